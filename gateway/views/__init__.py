"""What people read: the calls list and timeline pages, and the `voicebot calls` output."""
