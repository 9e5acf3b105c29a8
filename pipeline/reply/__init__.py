"""From a committed caller turn to clauses queued for playout: the reply worker, the chat
history, the clause chunker and the speech guard. The model, the voice and the tools it
drives are in ``pipeline/llm``, ``pipeline/tts`` and ``pipeline/tools``."""
