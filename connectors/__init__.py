"""Sinks and sources at the edge of hive-streams."""
