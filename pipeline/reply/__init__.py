"""From a committed caller turn to clauses queued for playout: the LLM and chat history, the
clause chunker, the speech guard, the tools and their policy, the TTS."""
