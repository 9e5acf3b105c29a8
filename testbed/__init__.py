"""What the tests and the benchmarks share: the real peers they start on loopback (the
gateway process, baresip, sipp, LLM, Wyoming and Prometheus servers, a headless browser, an
impaired network), the SIP corpora, and the speech and answer corpora with their scoring."""
