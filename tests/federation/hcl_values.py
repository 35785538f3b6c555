"""Read generated Terraform back with python-hcl2's parser (the `test` extra): every file is parsed
by it, and the parse tree is evaluated here for the few constructs the generator writes (strings,
heredocs, numbers, lists, objects, references, jsonencode/chomp/format/toset), so a test compares
values, not text.

No terraform binary is available here: `terraform validate` is not run; python-hcl2 is the
HCL parser and this evaluator the part of Terraform's semantics the tests need.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.conftest import require_module

_QUOTED_ESCAPE = re.compile(r'\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(["\\nrt]))|\$\$\{|%%\{')
_SIMPLE = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True)
class Ref:
    """A reference the caller gave no value for (``each.value``, ``aws_iam_role.role_admin.name``)."""

    path: str


def _unescape_quoted(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(0) in ("$${", "%%{"):
            return m.group(0)[1:]
        if m.group(3):
            return _SIMPLE[m.group(3)]
        return chr(int(m.group(1) or m.group(2), 16))

    return _QUOTED_ESCAPE.sub(one, text)


def _heredoc(token: str) -> str:
    head, _, rest = token.partition("\n")
    assert head.startswith("<<") and not head.startswith("<<-"), head
    marker = head[2:].strip()
    lines = rest.split("\n")
    while lines and lines[-1].strip() == "":
        lines.pop()  # what follows the closing marker
    assert lines[-1] == marker, (lines[-1], marker)
    body = "".join(line + "\n" for line in lines[:-1])
    assert re.search(r"(?<![$%])[$%]\{", body.replace("$${", "").replace("%%{", "")) is None, "an interpolation"
    return body.replace("$${", "${").replace("%%{", "%{")


class Evaluator:
    def __init__(self, refs: dict[str, Any]):
        self.refs = refs

    def _parts(self, node: Any) -> list[Any]:
        """The children that carry meaning (no punctuation, newlines or comments)."""
        from lark import Tree

        return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]

    def value(self, node: Any) -> Any:
        kind = node.data
        if kind == "expr_term":  # a term, maybe in parentheses
            (child,) = self._parts(node)
            return self.value(child)
        if kind in ("identifier", "get_attr_expr_term"):
            path = self._path(node)
            return self.refs.get(path, Ref(path))
        if kind == "string":
            return self._string(node)
        if kind == "heredoc_template":
            return _heredoc(str(node.children[0]))
        if kind == "int_lit":
            return int(str(node.children[0]))
        if kind == "literal_value":
            return {"true": True, "false": False, "null": None}[str(node.children[0])]
        if kind == "tuple":
            return [self.value(c) for c in self._parts(node)]
        if kind == "object":
            return dict(self._elem(e) for e in self._parts(node))
        if kind == "function_call":
            return self._call(node)
        raise AssertionError(f"the generator does not write {kind}: {node}")

    def _path(self, node: Any) -> str:
        """``a.b.c`` of a reference (``get_attr_expr_term``: a term, then ``.name``)."""
        if node.data == "identifier":
            return str(node.children[0])
        if node.data == "expr_term":
            (child,) = self._parts(node)
            return self._path(child)
        base, attr = self._parts(node)
        assert attr.data == "get_attr", f"the generator writes no {attr.data}"
        (name,) = self._parts(attr)
        return f"{self._path(base)}.{self._path(name)}"

    def _string(self, node: Any) -> str:
        from lark import Token

        out = []
        for part in self._parts(node):
            (piece,) = part.children
            assert isinstance(piece, Token), f"an interpolation in a generated string: {part}"
            out.append(_unescape_quoted(str(piece)))
        return "".join(out)

    def _elem(self, elem: Any) -> tuple[str, Any]:
        key_node, value_node = self._parts(elem)
        (key_expr,) = self._parts(key_node)
        (key,) = self._parts(key_expr)
        name = str(key.children[0]) if key.data == "identifier" else self._string(key)
        return name, self.value(value_node)

    def _call(self, node: Any) -> Any:
        name_node, *rest = self._parts(node)
        name = str(name_node.children[0])
        args = [self.value(a) for r in rest for a in self._parts(r)]
        if name == "jsonencode":
            (arg,) = args
            return json.dumps(arg, default=lambda ref: f"${{{ref.path}}}")  # an unresolved reference, marked
        if name == "chomp":
            (arg,) = args
            return re.sub(r"(\r?\n)+$", "", arg)
        if name == "format":  # the generator uses %s and %% only
            pattern, *values = args
            pieces = pattern.split("%%")
            it = iter(values)
            out = "%".join(re.sub("%s", lambda _: str(next(it)), piece) for piece in pieces)
            assert next(it, None) is None, "format: more values than %s"
            return out
        if name == "toset":
            (arg,) = args
            assert len(set(arg)) == len(arg)
            return sorted(arg)
        raise AssertionError(f"the generator does not call {name}")


Blocks = dict[tuple[str, ...], dict[str, Any]]


def parse(text: str, refs: dict[str, Any] | None = None) -> Blocks:
    """Every block of an HCL file by (type, *labels): its attributes' values, nested blocks under
    their own (type, *labels) key. Parsed by python-hcl2 (both its tree and its dict output)."""
    hcl2 = require_module("hcl2")
    hcl2.loads(text)  # python-hcl2's own reading of the file must succeed too
    evaluator = Evaluator(refs or {})
    return _body(hcl2.parses_to_tree(text).children[0], evaluator)


def _body(body: Any, ev: Evaluator) -> Blocks:
    blocks: Blocks = {}
    for item in ev._parts(body):
        assert item.data == "block", f"a top-level {item.data}"
        blocks[_block_key(item, ev)] = _block_body(item, ev)
    return blocks


def _block_key(block: Any, ev: Evaluator) -> tuple[str, ...]:
    ident, *labels = [c for c in ev._parts(block) if c.data != "body"]
    return (str(ident.children[0]), *(ev._string(label) for label in labels))


def _block_body(block: Any, ev: Evaluator) -> dict[str, Any]:
    (body,) = [c for c in ev._parts(block) if c.data == "body"]
    out: dict[Any, Any] = {}
    for item in ev._parts(body):
        if item.data == "attribute":
            ident, value = ev._parts(item)
            name = str(ident.children[0])
            assert name not in out, f"{name} twice"
            out[name] = ev.value(value)
        else:
            out[_block_key(item, ev)] = _block_body(item, ev)
    return out
