"""A workflow definition from JSON or YAML, checked whole: structure (the domain), channel types
(JSON Schema), initial values against their types, router conditions (JMESPath)."""
from __future__ import annotations

import json
from typing import Any

import jsonschema
import yaml
from jmespath.exceptions import JMESPathError

from ..domain.definition import DefinitionError
from ..domain.workflow import Workflow, parse_workflow
from .checks import compiled, problem


def load_definition(text: str | bytes, content_type: str = "") -> Any:
    """JSON or YAML text into a value (YAML is a superset of JSON)."""
    try:
        if "json" in content_type:
            return json.loads(text)
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise DefinitionError("$", f"not valid {'JSON' if 'json' in content_type else 'YAML or JSON'}: {exc}") from None


def validate_definition(raw: Any) -> Workflow:
    wf = parse_workflow(raw)
    for channel in wf.channels:
        path = f"channels.{channel.name}"
        schema = channel.schema
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise DefinitionError(f"{path}.type", f"not a JSON Schema: {exc.message}") from None
        if channel.initial is not None:
            wrong = problem(schema, channel.initial)
            if wrong:
                raise DefinitionError(f"{path}.initial", f"does not fit the channel's type: {wrong}")
    for i, router in enumerate(wf.routers):
        for j, route in enumerate(router.routes):
            try:
                compiled(route.when)
            except JMESPathError as exc:
                raise DefinitionError(f"routers[{i}].routes[{j}].when", f"not a JMESPath expression: {exc}") from None
    return wf


def check_inputs(wf: Workflow, inputs: Any) -> None:
    if not isinstance(inputs, dict):
        raise DefinitionError("inputs", "must be a mapping of channel names to values")
    for name, value in inputs.items():
        channel = wf.channel(name)
        if channel is None:
            raise DefinitionError(f"inputs.{name}", "is not a channel of this workflow")
        wrong = problem(channel.schema, value)
        if wrong:
            raise DefinitionError(f"inputs.{name}", f"does not fit the channel's type: {wrong}")
