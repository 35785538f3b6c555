"""Parse an import document (YAML or JSON) into plain data, refusing what could hurt or mislead.

What a reviewer reads must be what is applied, and no document may cost the process more than
its size: so a document is UTF-8 (a UTF-8 byte-order mark is allowed), one YAML document or
one JSON text, and it is refused (``InvalidImport``, 422 ``invalid_import``, with the line and
column when known) when it has

- duplicate keys in a mapping (YAML and JSON);
- YAML aliases (``*x``: a small document expands into a huge one), or tags other than the
  core schema's ``!!str !!int !!bool !!null !!float !!seq !!map`` (``!!python/...``, ``!local``,
  ``!!binary``, ``!!timestamp``, ``!!set``...);
- nesting deeper than ``MAX_DEPTH``, more than ``MAX_NODES`` YAML nodes, a YAML integer of more
  than ``MAX_INT_DIGITS`` characters or a JSON one beyond Python's digit limit (4300);
- JSON's non-standard ``NaN`` / ``Infinity``.

Plain YAML scalars resolve as in PyYAML's safe loader (YAML 1.1: ``yes`` is true, ``0x1f`` is
31), except that dates stay strings and ``<<`` merge keys are ordinary keys. The body size is
capped by ``server.max_body_bytes`` before this runs; the caller runs it off the event loop.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import yaml

from broker.errors import InvalidImport

MAX_DEPTH = 32
"""Nesting levels of maps and lists (a mapping document needs 6)."""
MAX_NODES = 250_000
"""YAML nodes (scalars, maps, lists): about 20,000 mappings; JSON has no node cap."""
MAX_INT_DIGITS = 32

_CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "int", "bool", "null", "float", "seq", "map"))

if TYPE_CHECKING:  # the C loader has the pure-Python one's constructor methods
    _Base = yaml.SafeLoader
else:
    _Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~5x faster


class _Loader(_Base):
    """The safe loader, with duplicate keys, foreign tags and long integers refused."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag not in ALLOWED_TAGS:
            raise yaml.constructor.ConstructorError(
                None, None, f"the tag {node.tag!r} is not accepted in an import", node.start_mark
            )
        return super().construct_object(node, deep=deep)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(None, None, "expected a mapping", node.start_mark)
        mapping: dict[Any, Any] = {}
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in mapping
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, "a key is a list or a map", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first on line {lines[key]})",
                    key_node.start_mark,
                )
            lines[key] = key_node.start_mark.line + 1
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of more than {MAX_INT_DIGITS} characters", node.start_mark
            )
        value: int = super().construct_yaml_int(node)
        return value


# the implicit resolvers of the allowed tags only (a class attribute of each loader, as in PyYAML)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag in ALLOWED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_constructor(_CORE + "int", _Loader.construct_yaml_int)


def _where(mark: Any) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _check_events(text: str) -> None:
    """One pass over the parser's events, before anything is built: aliases, tags, depth, size."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            raise InvalidImport("YAML anchors and aliases are not accepted in an import" + _where(event.start_mark))
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            tag = getattr(event, "tag", None)
            if tag is not None and tag not in ALLOWED_TAGS and tag != "!":  # "!": non-specific, a plain str/seq/map
                raise InvalidImport(f"the tag {tag!r} is not accepted in an import" + _where(event.start_mark))
            if nodes > MAX_NODES:
                raise InvalidImport(f"the document has more than {MAX_NODES} YAML nodes; send it as JSON")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidImport(f"the document nests deeper than {MAX_DEPTH} levels" + _where(event.start_mark))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _parse_yaml(text: str) -> Any:
    try:
        _check_events(text)
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        raise InvalidImport(f"not valid YAML: {what}{_where(exc.problem_mark or exc.context_mark)}") from None
    except yaml.YAMLError as exc:
        raise InvalidImport(f"not valid YAML: {exc}") from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidImport(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def _json_constant(name: str) -> Any:
    raise InvalidImport(f"{name} is not JSON")


def _depth_ok(data: Any) -> None:
    level = [data] if type(data) in (dict, list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise InvalidImport(f"the document nests deeper than {MAX_DEPTH} levels")
        level = [v for c in level for v in (c.values() if type(c) is dict else c) if type(v) in (dict, list)]


def _parse_json(text: str) -> Any:
    try:
        # integers: Python's own digit limit (sys.get_int_max_str_digits) raises ValueError
        data = json.loads(text, object_pairs_hook=_json_object, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise InvalidImport(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:  # the C decoder's own guard, at about a thousand levels
        raise InvalidImport(f"the document nests deeper than {MAX_DEPTH} levels") from None
    _depth_ok(data)
    return data


def parse_document(raw: bytes, syntax: Literal["yaml", "json"]) -> Any:
    """The document's data (dicts, lists, scalars), or ``InvalidImport`` saying what is wrong."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidImport("the document is UTF-16 or UTF-32; send it as UTF-8")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidImport(f"the document is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise InvalidImport("the document is empty")
    try:
        return _parse_json(text) if syntax == "json" else _parse_yaml(text)
    except InvalidImport:
        raise
    except ValueError as exc:  # an integer beyond Python's digit limit, in JSON
        raise InvalidImport(f"the document cannot be read: {str(exc)[:200]}") from None
    except (TypeError, RecursionError, MemoryError) as exc:  # whatever a parser lets through
        raise InvalidImport(f"the document cannot be read: {type(exc).__name__}") from None
