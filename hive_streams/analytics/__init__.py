"""Analytics on the event log: decoded rows and their filters, tail, Avro export, performance statistics, dead letters."""
from .filters import Filter, TenantIndex, parse_time, tenant_of
from .performance import Performance, fold

__all__ = ["Filter", "TenantIndex", "parse_time", "tenant_of", "Performance", "fold"]
