"""Performance benchmarks (`cxa bench overhead|search|ingest|ttft|stream`): each prints median and p95 and
writes JSON; figures are compared with their limit (the raw model, the raw library) where one exists."""
