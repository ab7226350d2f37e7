"""Reports: the per-test records, JSON and HTML."""
