"""Benchmarks of hive-streams against its peers and against the limit: `python -m bench --help`."""
