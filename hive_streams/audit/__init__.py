"""Tamper-evident audit: the hash chain over the event topics, its published heads, and `audit verify`."""
