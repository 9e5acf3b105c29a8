"""The SIP side of the gateway: the user agent, its calls and their control, the media port,
admission, registration and the request screen."""
