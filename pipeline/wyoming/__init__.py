"""Speech services over Home Assistant's Wyoming protocol: framing (``protocol.py``), the
speech-to-text and text-to-speech exchanges as data (``messages.py``) and one blocking
exchange over a socket (``client.py``). The backends using them: ``pipeline/stt/wyoming.py``
and ``pipeline/tts/wyoming.py``."""
