"""Workflows at the edge: full validation (JSON Schema types, router conditions), the builder, the checks
the worker gives the execution aggregate."""
from .builder import WorkflowBuilder
from .checks import CHECKS
from .definitions import load_definition, validate_definition

__all__ = ["WorkflowBuilder", "CHECKS", "load_definition", "validate_definition"]
