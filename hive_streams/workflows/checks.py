"""The checks the execution aggregate needs from libraries: JSON Schema (jsonschema) and router
conditions (JMESPath), both evaluated in the worker."""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jmespath
import jsonschema
from jmespath.exceptions import JMESPathError

from ..domain.superstep import Checks


@lru_cache(maxsize=512)
def _validator(schema_json: str):
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def problem(schema: dict | bool, value: Any) -> str:
    error = jsonschema.exceptions.best_match(_validator(json.dumps(schema, sort_keys=True)).iter_errors(value))
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{error.message}" + (f" (at /{where})" if where else "")


@lru_cache(maxsize=512)
def compiled(expression: str):
    return jmespath.compile(expression)


def truthy(expression: str, values: dict) -> bool:
    try:
        result = compiled(expression).search(values)
    except JMESPathError:
        return False
    return result not in (None, False, [], {}, "", 0)


CHECKS = Checks(problem, truthy)
