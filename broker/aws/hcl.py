"""A small HCL (HashiCorp Configuration Language, native syntax) writer for the generated
Terraform: blocks, attributes and values built as data and written in one place, so an odd
value (a quote, a newline, a ``${`` in SAML metadata) can never break the file.

Values are ``str``, ``int``, ``bool``, lists, dicts (object constructors), ``Call`` (a
function call) and ``Expr`` (a reference, written as is). Strings follow the HCL native syntax spec
(hashicorp/hcl ``hclsyntax/spec.md``, "Template Expressions"): in a quoted string ``\\``, ``"``
and control characters are backslash escapes; in every template, quoted or heredoc, ``${`` and
``%{`` open an interpolation or directive and are written ``$${`` and ``%%{`` to stay literal.
A multi-line string is a heredoc (``<<EOT``, not ``<<-``: its lines are kept byte for byte,
leading spaces included); a heredoc's value ends with a newline, so a string without a final
newline is wrapped in ``chomp(...)``, which removes exactly that one. (HCL reads literal text
as Unicode NFC: text that is not NFC would not come back byte for byte; the broker's metadata
and ARNs are ASCII.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

INDENT = "  "
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_KEYWORDS = frozenset({"true", "false", "null", "for"})
"""Bare object keys that would read as something else: they are quoted."""
_QUOTED_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class Expr:
    """An expression written as is: a reference (``aws_iam_role.admin.arn``, ``each.value``)."""

    text: str


@dataclass(frozen=True)
class Call:
    """A function call; its arguments are values, rendered and escaped like any other."""

    function: str
    args: tuple[Value, ...]


Value: TypeAlias = str | int | bool | Expr | Call | Sequence["Value"] | dict[str, "Value"]


@dataclass(frozen=True)
class Block:
    type: str
    labels: tuple[str, ...] = ()
    body: Sequence[Attribute | Block] = ()
    comment: str | None = None
    """Written as ``#`` lines above the block."""


@dataclass(frozen=True)
class Attribute:
    name: str
    value: Value


@dataclass
class File:
    """One ``.tf`` file: top-level blocks, with an optional header comment."""

    blocks: list[Block] = field(default_factory=list)
    comment: str | None = None

    def render(self) -> str:
        parts = [_comment(self.comment, 0)] if self.comment else []
        parts.extend((_comment(b.comment, 0) if b.comment else "") + _block(b, 0) for b in self.blocks)
        return "\n".join(parts)


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not an HCL identifier: {name!r}")
    return name


def _template_escape(text: str) -> str:
    return text.replace("${", "$${").replace("%{", "%%{")


def quoted(text: str) -> str:
    """A quoted template string whose value is exactly ``text``."""
    out = []
    for ch in _template_escape(text):
        if ch in _QUOTED_ESCAPES:
            out.append(_QUOTED_ESCAPES[ch])
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _heredoc_safe(text: str) -> bool:
    """A heredoc keeps every character of ``text`` as it is: lines of printable characters (and tabs)."""
    return "\n" in text and all(ch in "\n\t" or (ord(ch) >= 0x20 and not 0x7F <= ord(ch) < 0xA0) for ch in text) \
        and "\u2028" not in text and "\u2029" not in text


def _heredoc(text: str, indent: int) -> str:
    marker, n = "EOT", 1
    while marker in text:
        n += 1
        marker = f"EOT{n}"
    body = _template_escape(text)
    if text.endswith("\n"):
        return f"<<{marker}\n{body}{marker}\n"
    return f"chomp(<<{marker}\n{body}\n{marker}\n{INDENT * indent})"


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) and name not in _KEYWORDS else quoted(name)


def _inline(value: Value) -> bool:
    """Short enough to stay on one line inside a list."""
    return isinstance(value, (int, Expr)) or (isinstance(value, str) and not _heredoc_safe(value))


def _value(value: Value, indent: int) -> str:
    """``value`` as HCL; lines after the first are indented for nesting level ``indent``."""
    pad, inner = INDENT * indent, INDENT * (indent + 1)
    if isinstance(value, Expr):
        return value.text
    if isinstance(value, Call):
        return f"{value.function}({', '.join(_value(a, indent) for a in value.args)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _heredoc(value, indent) if _heredoc_safe(value) else quoted(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = _assignments([(_key(k), _value(v, indent + 1)) for k, v in value.items()], indent + 1)
        return "{\n" + "".join(lines) + f"{pad}}}"
    items = list(value)
    if len(items) <= 4 and all(_inline(v) for v in items):
        return "[" + ", ".join(_value(v, indent) for v in items) + "]"
    return "[\n" + "".join(f"{inner}{_value(v, indent + 1)},\n" for v in items) + f"{pad}]"


def _assignments(pairs: list[tuple[str, str]], indent: int) -> list[str]:
    """``key = value`` lines (values rendered); the ``=`` of neighbouring one-line values aligned."""
    pad = INDENT * indent
    lines: list[str] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        width = max((len(k) for k, _ in run), default=0)
        lines.extend(f"{pad}{k.ljust(width)} = {t}\n" for k, t in run)
        run.clear()

    for key, text in pairs:
        if "\n" in text:
            flush()
            lines.append(f"{pad}{key} = {text}" + ("" if text.endswith("\n") else "\n"))
        else:
            run.append((key, text))
    flush()
    return lines


def _comment(text: str, indent: int) -> str:
    return "".join(f"{INDENT * indent}# {line}".rstrip() + "\n" for line in text.splitlines())


def _body(items: Sequence[Attribute | Block], indent: int) -> str:
    """A block's body: its attributes (a nested block ends an aligned run) and nested blocks."""
    out: list[str] = []
    run: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, Attribute):
            run.append((_identifier(item.name), _value(item.value, indent)))
            continue
        out.extend(_assignments(run, indent))
        run = []
        out.append((_comment(item.comment, indent) if item.comment else "") + _block(item, indent))
    out.extend(_assignments(run, indent))
    return "".join(out)


def _block(block: Block, indent: int) -> str:
    pad = INDENT * indent
    labels = "".join(f' "{_identifier(label)}"' for label in block.labels)  # ours: no escaping to get wrong
    return f"{pad}{_identifier(block.type)}{labels} {{\n{_body(block.body, indent + 1)}{pad}}}\n"
