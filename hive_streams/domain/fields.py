"""A field of a definition: its JSON type and the range its schema field can carry. One table that
validation reads and the API's OpenAPI document is generated from. Pure."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1  # Avro int
LONG_MIN, LONG_MAX = -(2 ** 63), 2 ** 63 - 1  # Avro long
DOUBLE_MAX = 1.7976931348623157e308  # Avro double: finite; NaN and Infinity are refused everywhere

_PYTHON = {"string": (str,), "integer": (int,), "number": (int, float), "array": (list,), "object": (dict,),
           "boolean": (bool,)}
_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "array": "a list",
          "object": "a mapping", "boolean": "true or false"}


class FieldError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Field:
    kinds: tuple[str, ...]  # JSON types it accepts, e.g. ("number",), ("string", "object")
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    min_length: int | None = None  # characters of a string, items of a list
    max_length: int | None = None
    enum: tuple[str, ...] | None = None
    items: "Field | None" = None
    properties: dict[str, "Field"] | None = None  # an object's known fields
    required: bool = False
    closed: bool = False  # an object with fields other than its properties is refused
    default: Any = None
    doc: str = ""
    extra: dict = field(default_factory=dict)  # more of the JSON Schema, for the document only

    def check(self, value: Any, path: str) -> Any:
        """The value when it is of a kind and in the range this field takes, else FieldError(path)."""
        if not any(_is(value, kind) for kind in self.kinds):
            raise FieldError(path, f"must be {' or '.join(_WORDS[k] for k in self.kinds)}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self._check_number(value, path)
        elif isinstance(value, (str, list)):
            what = "characters" if isinstance(value, str) else "items"
            if self.min_length is not None and len(value) < self.min_length:
                raise FieldError(path, f"must have at least {self.min_length} {what}")
            if self.max_length is not None and len(value) > self.max_length:
                raise FieldError(path, f"must have at most {self.max_length} {what}")
        if self.enum is not None and value not in self.enum:
            raise FieldError(path, f"must be one of {', '.join(self.enum)}")
        return value

    def validate(self, value: Any, path: str = "") -> Any:
        """`check`, then the same for each item and known field, with required and unknown fields."""
        self.check(value, path or "$")
        if isinstance(value, dict) and self.properties is not None:
            for name, spec in self.properties.items():
                if name in value:
                    spec.validate(value[name], _at(path, name))
                elif spec.required:
                    raise FieldError(_at(path, name), "is required")
            unknown = sorted((k for k in value if k not in self.properties), key=str) if self.closed else ()
            if unknown:
                raise FieldError(_at(path, str(unknown[0])),
                                 f"unknown field (expected one of {', '.join(self.properties)})")
        if isinstance(value, list) and self.items is not None:
            for i, item in enumerate(value):
                self.items.validate(item, f"{path or '$'}[{i}]")
        return value

    def _check_number(self, value: float, path: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise FieldError(path, "must be a finite number (NaN and Infinity are refused)")
        wide = (LONG_MIN, LONG_MAX) if "integer" in self.kinds else (-DOUBLE_MAX, DOUBLE_MAX)
        low = wide[0] if self.minimum is None else max(self.minimum, wide[0])
        high = wide[1] if self.maximum is None else min(self.maximum, wide[1])
        if (value <= low if self.exclusive_minimum else value < low) or value > high:
            above = "above " if self.exclusive_minimum else ""
            raise FieldError(path, f"must be between {above}{_show(low)} and {_show(high)}")

    def schema(self) -> dict:
        """The field as JSON Schema (OpenAPI 3.1)."""
        out: dict = {"type": list(self.kinds) if len(self.kinds) > 1 else self.kinds[0]}
        if self.minimum is not None or "integer" in self.kinds:
            low = self.minimum if self.minimum is not None else LONG_MIN
            out["exclusiveMinimum" if self.exclusive_minimum else "minimum"] = low
        if self.maximum is not None or "integer" in self.kinds:
            out["maximum"] = self.maximum if self.maximum is not None else LONG_MAX
        if self.min_length is not None:
            out["minLength" if "string" in self.kinds else "minItems"] = self.min_length
        if self.max_length is not None:
            out["maxLength" if "string" in self.kinds else "maxItems"] = self.max_length
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.items is not None:
            out["items"] = self.items.schema()
        if self.properties is not None:
            out["properties"] = {name: f.schema() for name, f in self.properties.items()}
            required = [name for name, f in self.properties.items() if f.required]
            if required:
                out["required"] = required
            if self.closed:
                out["additionalProperties"] = False
        if self.default is not None:
            out["default"] = self.default
        if self.doc:
            out["description"] = self.doc
        return {**out, **self.extra}


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(number: float) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    return isinstance(value, _PYTHON[kind])
