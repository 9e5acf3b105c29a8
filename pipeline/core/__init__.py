"""The sans-I/O conversation core: turn detection, keypad entry and the per-call state machine,
clocked by inbound sample index; it answers events with actions for the session to carry out."""
