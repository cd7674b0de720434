"""Per-type Avro readers and writers and record converters, generated once from a schema and its domain class.

A reader turns an Avro body straight into the domain object: no intermediate dict, no generic converter per
field, no `typing` look-ups per record. A writer appends the body straight from the object. Each gives what
fastavro and the generic `to_record`/`from_record` of `avro.py` give for the same value; a writer raises
TypeError for any value that is not of the exact type it was generated for, and the codec then takes the
generic path, so unusual values keep their old encoding (or their old error).

A schema or class these generators do not cover (logical types, enums, fixed, unions other than null and one
primitive, records whose class cannot be built from its fields) gets no generated function: `reader` and
`writer` return None and the codec uses fastavro for it.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import typing

from .binary import DOUBLE, FLOAT, LENGTHS, SMALL, bad_length, read_long, write_long
from .hints import (PLAIN, Unsupported, buildable, field_hints, immutable_value, is_plain, map_value_class, normalize,
                    optional_inner)

__all__ = ["PLAIN", "SHARED", "SHARED_BYTES", "SHARED_MAX", "Unsupported", "builder", "reader", "recorder", "writer"]

HELPERS = {"_rlong": read_long, "_wlong": write_long, "_SMALL": SMALL, "_LENGTHS": LENGTHS, "_bad": bad_length,
           "_unpack_d": DOUBLE.unpack_from, "_unpack_f": FLOAT.unpack_from, "_pack_d": DOUBLE.pack,
           "_pack_f": FLOAT.pack, "_new": object.__new__, "_PLAIN": PLAIN}

SHARED: dict[tuple, dict] = {}  # (schema, class) -> {the bytes of a nested value: the one object made of them}
SHARED_MAX = 1024  # values kept per type; the table starts again when full
SHARED_BYTES = 128  # larger values are built each time: the table stays small


# code generation ----------------------------------------------------------------------------------------

class _Source:
    def __init__(self):
        self.ns = dict(HELPERS)
        self.functions: dict = {}
        self.lines: list[str] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value, prefix: str = "_c") -> str:
        for key, known in self.ns.items():
            if known is value and key.startswith(prefix):
                return key
        key = self.name(prefix)
        self.ns[key] = value
        return key

    def compile(self, entry: str):
        code = "\n".join(self.lines)
        exec(compile(code, f"<hive_streams.codec.compiled {entry}>", "exec"), self.ns)
        return self.ns[entry]


def _emit_long(out: list, pad: str, target: str) -> None:
    """Reads a zig-zag varint into target, inline: one byte in most cases, a loop for timestamps."""
    out += [f"{pad}b = d[p]",
            f"{pad}if b < 128:",
            f"{pad}    {target} = (b >> 1) ^ -(b & 1)",
            f"{pad}    p += 1",
            f"{pad}else:",
            f"{pad}    {target} = b & 127",
            f"{pad}    s = 7",
            f"{pad}    p += 1",
            f"{pad}    b = d[p]",
            f"{pad}    while b > 127:",
            f"{pad}        {target} |= (b & 127) << s",
            f"{pad}        s += 7",
            f"{pad}        p += 1",
            f"{pad}        b = d[p]",
            f"{pad}    if s > 63:",
            f"{pad}        raise ValueError('varint longer than 10 bytes')",
            f"{pad}    {target} |= b << s",
            f"{pad}    p += 1",
            f"{pad}    {target} = ({target} >> 1) ^ -({target} & 1)"]


class _Readers(_Source):
    """Functions f(d, p, L) -> (value, p) reading one record of d (bytes of length L) from position p."""

    def record(self, t, cls, nested: bool = False) -> str:
        share = nested and cls is not None and immutable_value(cls)
        key = ("r", t[1], cls, share)
        if key in self.functions:
            return self.functions[key]
        fn = self.name("_read_")
        self.functions[key] = fn
        hints = field_hints(cls) if cls is not None else {}
        body: list[str] = []
        names = []
        for fname, ftype in t[2]:
            var = self.name("v")
            hint = hints.get(fname) if cls is not None else None
            self.value(body, "    ", var, ftype, hint, raw=cls is None)
            names.append((fname, var))
        lines = [f"def {fn}(d, p, L):", *(["    p0 = p"] if share else []), *body]
        present = dict(names)
        if cls is None:
            lines.append("    return {" + ", ".join(f"{n!r}: {v}" for n, v in names) + "}, p")
        elif buildable(cls) and set(present) == {f.name for f in dataclasses.fields(cls)}:
            c = self.const(cls, "_cls")
            items = ", ".join(f"{f.name!r}: {present[f.name]}" for f in dataclasses.fields(cls))
            build = [f"o = _new({c})", f"o.__dict__.update({{{items}}})"]
            if share:  # equal values, one object: its bytes say which
                shared = self.const(SHARED.setdefault((t, cls), {}), "_shared")
                lines += [f"    if p - p0 > {SHARED_BYTES}:", *(f"        {line}" for line in build),
                          "        return o, p",
                          "    k = d[p0:p]", f"    o = {shared}.get(k)", "    if o is None:",
                          *(f"        {line}" for line in build),
                          f"        if len({shared}) >= {SHARED_MAX}:", f"            {shared}.clear()",
                          f"        {shared}[k] = o"]
            else:
                lines += [f"    {line}" for line in build]
            lines.append("    return o, p")
        else:  # fields missing from this schema take the class defaults, as `from_record` does
            c = self.const(cls, "_cls")
            fields = {f.name for f in dataclasses.fields(cls)}
            items = ", ".join(f"{n!r}: {v}" for n, v in names if n in fields)
            lines.append(f"    return {c}(**{{{items}}}), p")
        self.lines += lines + [""]
        return fn

    def value(self, out: list, pad: str, target: str, t, hint, raw: bool = False) -> None:
        """Lines that read one value of Avro type t into `target`, converted as `from_record` converts for hint."""
        kind = t[0]
        if raw:
            hint = None
        if kind == "union":
            self.union(out, pad, target, t, hint, raw)
            return
        if hint is not None and not is_plain(hint):
            inner = optional_inner(hint)
            if inner is not None:  # a value that is never null: convert as the inner type
                self.value(out, pad, target, t, inner)
                return
            if dataclasses.is_dataclass(hint):
                if kind != "record":
                    raise Unsupported(f"{hint.__name__} from Avro {kind}")
                out.append(f"{pad}{target}, p = {self.record(t, hint, nested=True)}(d, p, L)")
                return
            if hint is float:
                if kind not in ("double", "float", "long", "int"):
                    raise Unsupported(f"float from Avro {kind}")
                self.value(out, pad, target, t, None, raw=True)
                if kind in ("long", "int"):
                    out.append(f"{pad}{target} = float({target})")
                return
            origin = typing.get_origin(hint)
            if origin in (tuple, frozenset):
                if kind != "array":
                    raise Unsupported(f"{origin.__name__} from Avro {kind}")
                item = typing.get_args(hint)[0] if origin is tuple else None
                self.array(out, pad, target, t, item)
                out.append(f"{pad}{target} = {origin.__name__}({target})")
                return
            value_cls = map_value_class(hint)
            if value_cls is not None:
                if kind != "map":
                    raise Unsupported(f"mapping from Avro {kind}")
                self.map(out, pad, target, t, value_cls)
                return
            raise Unsupported(f"hint {hint}")
        raw = True
        if kind == "null":
            out.append(f"{pad}{target} = None")
        elif kind == "boolean":
            out += [f"{pad}{target} = d[p] != 0", f"{pad}p += 1"]
        elif kind in ("int", "long"):
            _emit_long(out, pad, target)
        elif kind in ("double", "float"):
            size, unpack = (8, "_unpack_d") if kind == "double" else (4, "_unpack_f")
            out += [f"{pad}{target} = {unpack}(d, p)[0]", f"{pad}p += {size}"]
        elif kind in ("string", "bytes"):
            _emit_long(out, pad, "n")
            out += [f"{pad}e = p + n",
                    f"{pad}if e > L or n < 0:",
                    f"{pad}    raise _bad(n)",
                    f"{pad}{target} = d[p:e]{'.decode()' if kind == 'string' else ''}",
                    f"{pad}p = e"]
        elif kind == "array":
            self.array(out, pad, target, t, None)
        elif kind == "map":
            self.map(out, pad, target, t, None)
        elif kind == "record":
            out.append(f"{pad}{target}, p = {self.record(t, None)}(d, p, L)")
        else:
            raise Unsupported(kind)

    def union(self, out: list, pad: str, target: str, t, hint, raw: bool) -> None:
        branches = t[1]
        inner = None if raw or hint is None else (optional_inner(hint) or hint)
        if ("null",) in branches and not raw and hint is not None and optional_inner(hint) is None \
                and not is_plain(hint):
            raise Unsupported("a null branch for a field that cannot be None")
        index = self.name("i")
        _emit_long(out, pad, index)
        for i, branch in enumerate(branches):
            out.append(f"{pad}{'if' if i == 0 else 'elif'} {index} == {i}:")
            if branch == ("null",):
                out.append(f"{pad}    {target} = None")
            else:
                self.value(out, pad + "    ", target, branch, inner, raw=raw or inner is None)
        out += [f"{pad}else:", f"{pad}    raise ValueError('union index ' + str({index}))"]

    def _blocks(self, out: list, pad: str, count: str) -> str:
        """Opens the loop over an array's or map's blocks; returns the padding of one item."""
        _emit_long(out, pad, count)
        out += [f"{pad}while {count}:",
                f"{pad}    if {count} < 0:",
                f"{pad}        {count} = -{count}",
                f"{pad}        _, p = _rlong(d, p)",  # the block's size in bytes: not needed
                f"{pad}    for _ in range({count}):"]
        return pad + "        "

    def array(self, out: list, pad: str, target: str, t, item_hint) -> None:
        count, item = self.name("c"), self.name("x")
        out.append(f"{pad}{target} = []")
        inner = self._blocks(out, pad, count)
        self.value(out, inner, item, t[1], item_hint, raw=item_hint is None)
        out.append(f"{inner}{target}.append({item})")
        _emit_long(out, pad + "    ", count)

    def map(self, out: list, pad: str, target: str, t, value_hint) -> None:
        count, key, item = self.name("c"), self.name("k"), self.name("x")
        out.append(f"{pad}{target} = {{}}")
        inner = self._blocks(out, pad, count)
        self.value(out, inner, key, ("string",), None, raw=True)
        self.value(out, inner, item, t[1], value_hint, raw=value_hint is None)
        out.append(f"{inner}{target}[{key}] = {item}")
        _emit_long(out, pad + "    ", count)


class _Writers(_Source):
    """Functions f(obj, out) appending the Avro body of obj to the bytearray out."""

    def record(self, t, cls) -> str:
        key = ("w", t[1], cls)
        if key in self.functions:
            return self.functions[key]
        if cls is None or not dataclasses.is_dataclass(cls):
            raise Unsupported(f"record {t[1]} without a domain class")
        hints = field_hints(cls)
        missing = [name for name, _ in t[2] if name not in hints]
        if missing:
            raise Unsupported(f"{cls.__name__} lacks {missing}")
        fn = self.name("_write_")
        self.functions[key] = fn
        c = self.const(cls, "_cls")
        body = [f"def {fn}(o, out):", f"    if o.__class__ is not {c}:", "        raise TypeError('not ' + "
                f"{c}.__name__)"]
        for fname, ftype in t[2]:
            var = self.name("v")
            body.append(f"    {var} = o.{fname}")
            self.value(body, "    ", var, ftype, hints[fname])
        self.lines += body + [""]
        return fn

    def value(self, out: list, pad: str, var: str, t, hint) -> None:
        kind = t[0]
        fail = f"{pad}    raise TypeError({kind!r})"
        if kind == "null":
            out += [f"{pad}if {var} is not None:", fail]
        elif kind == "boolean":
            out += [f"{pad}if {var}.__class__ is not bool:", fail, f"{pad}out += b'\\x01' if {var} else b'\\x00'"]
        elif kind in ("int", "long"):
            out += [f"{pad}if {var}.__class__ is not int:", fail,
                    f"{pad}out += _SMALL[{var} + 64] if -64 <= {var} < 64 else _wlong({var})"]
            if kind == "int":
                raise Unsupported("Avro int")  # fastavro checks the 32-bit range; not needed by our schemas
        elif kind in ("double", "float"):
            pack = "_pack_d" if kind == "double" else "_pack_f"
            out += [f"{pad}if {var}.__class__ is not float:", fail, f"{pad}out += {pack}({var})"]
        elif kind in ("string", "bytes"):
            s = self.name("s")
            expected = "str" if kind == "string" else "bytes"
            out += [f"{pad}if {var}.__class__ is not {expected}:", fail]
            out.append(f"{pad}{s} = {var}.encode()" if kind == "string" else f"{pad}{s} = {var}")
            out += [f"{pad}n = len({s})", f"{pad}out += _LENGTHS[n] if n < 4096 else _wlong(n)", f"{pad}out += {s}"]
        elif kind == "union":
            self.union(out, pad, var, t, hint)
        elif kind == "array":
            items, item = self.name("a"), self.name("y")
            item_hint = None
            origin = typing.get_origin(hint)
            if origin in (tuple, list, frozenset, collections.abc.Sequence):
                item_hint = typing.get_args(hint)[0]
            out += [f"{pad}if {var}.__class__ is tuple or {var}.__class__ is list:",
                    f"{pad}    {items} = {var}",
                    f"{pad}elif {var}.__class__ is frozenset:",
                    f"{pad}    {items} = sorted({var})",  # as to_record: sorted, items as they are
                    f"{pad}else:",
                    fail,
                    f"{pad}if {items}:",
                    f"{pad}    n = len({items})",
                    f"{pad}    out += _SMALL[n + 64] if n < 64 else _wlong(n)",
                    f"{pad}    for {item} in {items}:"]
            self.item(out, pad + "        ", item, t[1], item_hint, frozen=f"{var}.__class__ is frozenset")
            out.append(f"{pad}out += b'\\x00'")
        elif kind == "map":
            key, item = self.name("k"), self.name("y")
            value_hint = None
            if typing.get_origin(hint) in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
                value_hint = typing.get_args(hint)[1]
            out += [f"{pad}if {var}.__class__ is not dict:", fail,
                    f"{pad}if {var}:",
                    f"{pad}    n = len({var})",
                    f"{pad}    out += _SMALL[n + 64] if n < 64 else _wlong(n)",
                    f"{pad}    for {key}, {item} in {var}.items():"]
            self.value(out, pad + "        ", key, ("string",), str)
            self.value(out, pad + "        ", item, t[1], value_hint)
            out.append(f"{pad}out += b'\\x00'")
        elif kind == "record":
            cls = hint if dataclasses.is_dataclass(hint) else None
            out.append(f"{pad}{self.record(t, cls)}({var}, out)")
        else:
            raise Unsupported(kind)

    def item(self, out: list, pad: str, var: str, t, hint, frozen: str) -> None:
        if t[0] in ("record", "array", "map"):
            # to_record leaves a frozenset's items as they are; records, arrays and maps in one are left to it
            out += [f"{pad}if {frozen}:", f"{pad}    raise TypeError('frozenset of containers')"]
        self.value(out, pad, var, t, hint)

    def union(self, out: list, pad: str, var: str, t, hint) -> None:
        branches = t[1]
        others = [b for b in branches if b != ("null",)]
        if len(branches) != 2 or len(others) != 1 or others[0][0] not in ("long", "double", "string", "boolean"):
            raise Unsupported("unions other than null and one primitive")
        null_at, other = branches.index(("null",)), others[0]
        expected = {"long": "int", "double": "float", "string": "str", "boolean": "bool"}[other[0]]
        out += [f"{pad}if {var} is None:",
                f"{pad}    out += {SMALL[null_at + 64]!r}",
                f"{pad}elif {var}.__class__ is {expected}:",
                f"{pad}    out += {SMALL[1 - null_at + 64]!r}"]
        self.value(out, pad + "    ", var, other, optional_inner(hint) or hint)
        out += [f"{pad}else:", f"{pad}    raise TypeError('union')"]


class _Recorders(_Source):
    """Per dataclass, obj -> dict as `to_record` makes it; `_rec` is the generic `to_record` for the rest."""

    def record(self, cls, rec) -> str:
        self.ns["_rec"] = rec
        fn = self.name("_to_record_")
        hints = field_hints(cls)
        items = []
        for name, hint in hints.items():
            scalar = hint in PLAIN or (optional_inner(hint) in PLAIN)
            if scalar:
                items.append(f"{name!r}: (x if (x := o.{name}).__class__ in _PLAIN else _rec(x))")
            else:
                items.append(f"{name!r}: _rec(o.{name})")
        self.lines += [f"def {fn}(o):", "    return {" + ", ".join(items) + "}", ""]
        return fn


class _Builders(_Source):
    """Per dataclass, dict -> obj as `from_record` builds it; `_slow` is the generic path for records missing a
    field (defaults, or the TypeError of a missing required one)."""

    def record(self, cls, slow, build) -> str:
        self.ns["_slow"], self.ns["_build"] = slow, build
        fn = self.name("_from_record_")
        c = self.const(cls, "_cls")
        hints = field_hints(cls)
        lines = [f"def {fn}(r):", "    try:"]
        names = []
        for name, hint in hints.items():
            var = self.name("v")
            lines.append(f"        {var} = {self.convert(f'r[{name!r}]', hint)}")
            names.append((name, var))
        lines += ["    except KeyError:", f"        return _slow({c}, r)"]
        items = ", ".join(f"{n!r}: {v}" for n, v in names)
        if buildable(cls):
            lines += [f"    o = _new({c})", f"    o.__dict__.update({{{items}}})", "    return o"]
        else:
            lines.append(f"    return {c}(**{{{items}}})")
        self.lines += lines + [""]
        return fn

    def convert(self, expr: str, hint) -> str:
        """An expression converting expr as `from_record`'s converters do for hint."""
        if is_plain(hint):
            return expr
        if dataclasses.is_dataclass(hint):
            return f"_build({self.const(hint, '_cls')}, {expr})"
        origin = typing.get_origin(hint)
        if origin is tuple:
            item = typing.get_args(hint)[0]
            return f"tuple({expr})" if is_plain(item) else f"tuple([{self.convert('i', item)} for i in {expr}])"
        if origin is frozenset:
            return f"frozenset({expr})"
        if hint is float:
            return f"float({expr})"
        value_cls = map_value_class(hint)
        if value_cls is not None:
            return f"{{k: {self.convert('i', value_cls)} for k, i in {expr}.items()}}"
        inner = optional_inner(hint)
        if inner is not None:
            return f"(None if (w := {expr}) is None else {self.convert('w', inner)})"
        raise Unsupported(f"hint {hint}")


# entry points -------------------------------------------------------------------------------------------

def reader(schema: dict, cls: type):
    """f(data, pos, length) -> (obj, pos) for bodies written with schema, or None where not generated."""
    try:
        t = normalize(schema)
        if t[0] != "record":
            raise Unsupported("top-level type is not a record")
        source = _Readers()
        fn = source.record(t, cls)
        return source.compile(fn)
    except Unsupported:
        return None


def writer(schema: dict, cls: type):
    """f(obj, out) appending the body of obj to the bytearray out, or None where not generated."""
    try:
        t = normalize(schema)
        if t[0] != "record":
            raise Unsupported("top-level type is not a record")
        source = _Writers()
        fn = source.record(t, cls)
        return source.compile(fn)
    except Unsupported:
        return None


def recorder(cls: type, rec):
    source = _Recorders()
    return source.compile(source.record(cls, rec))


def builder(cls: type, slow, build):
    try:
        source = _Builders()
        return source.compile(source.record(cls, slow, build))
    except Unsupported:
        return None
