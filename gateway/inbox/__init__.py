"""The messages callers leave: the store (``store``), the inbox web page (``page``) and their
text for a terminal (``view``)."""
