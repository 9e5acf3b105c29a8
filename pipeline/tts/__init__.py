"""Text-to-speech: the ``TextToSpeech`` interface (``base``), Piper in process, a Wyoming
server, and the cache of recurring phrases."""
