"""The language model: the ``Llm`` interface (``base``), its backends (``embedded``: llama.cpp
in process; ``server``: an OpenAI-compatible server, or the ``engine`` the gateway starts),
and the end-of-message probability asked of a small model."""
