"""Audio in and out of a call: frames and playout, echo cancelling and gating, the VAD, and
the handle of one bot utterance (what the caller heard of it)."""
