"""What is kept about calls: the journal of call records, the observer that writes it, the
audio edges behind the wire TTFA, call recordings, and the Prometheus metrics."""
