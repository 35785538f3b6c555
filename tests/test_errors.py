"""The error trees (broker.errors, broker.oauth.errors): message first and ``reason=`` a keyword on
every BrokerError, the docstring drawings match the classes, and no raise site in broker/ passes
an audit reason where the message goes."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import broker.oauth.errors as oauth_errors
from broker import errors
from broker.errors import (
    BrokerError,
    InvalidCredentials,
    SsoRequestInvalid,
    UpstreamDenied,
    UpstreamRejected,
    UpstreamReplay,
    UpstreamUserUnknown,
)

BROKER = Path(__file__).resolve().parents[1] / "broker"
REASON_CLASSES = [SsoRequestInvalid, InvalidCredentials, UpstreamRejected, UpstreamReplay, UpstreamDenied,
                  UpstreamUserUnknown]


@pytest.mark.parametrize("cls", REASON_CLASSES, ids=lambda c: c.__name__)
def test_the_first_argument_is_the_message_and_reason_a_keyword(cls: type[BrokerError]) -> None:
    assert cls("x").message == "x" and str(cls("x")) == "x"
    assert cls("x").reason == cls.reason  # the class's own reason, not the message
    refused = cls(reason="wrong_audience")
    assert refused.message == cls.message and refused.reason == "wrong_audience"
    both = cls("what the person is told", reason="nonce_mismatch")
    assert (both.message, both.reason) == ("what the person is told", "nonce_mismatch")
    assert "reason" not in both.to_dict() and "nonce_mismatch" not in str(both.to_dict())  # the audit log's only


def test_upstream_rejected_x_is_the_message_x() -> None:
    assert UpstreamRejected("x").message == "x"
    assert UpstreamRejected().reason == "rejected" and UpstreamRejected().message == UpstreamRejected.message


def test_every_error_has_a_reason_none_unless_set() -> None:
    assert BrokerError().reason is None and errors.RoleNotGranted().reason is None
    assert errors.RoleNotGranted(reason="not_mapped").reason == "not_mapped"
    assert errors.TooManyRequests(retry_after=3).reason is None
    assert InvalidCredentials().reason == "invalid_credentials" and SsoRequestInvalid().reason == "unknown_request"
    assert repr(UpstreamDenied(reason="status_not_success")) == (
        f"UpstreamDenied({UpstreamDenied.message!r}, reason='status_not_success')")


# ---- the docstring drawings are the class trees ----

_LINE = re.compile(r"^(?P<indent>(?:[│ ] {3})*)(?:[├└]── )?(?P<name>[A-Z]\w+)(?: \((?P<status>\d{3})\))?(?:\s+(?P<code>[a-z_]+))?")


def _drawn(module: ModuleType, root: str) -> list[tuple[str, str | None, int | None, str | None]]:
    """(class, parent, status drawn or None, code drawn or None) for each line of the drawing."""
    doc = module.__doc__ or ""
    lines = [line[4:] for line in doc.splitlines() if line.startswith("    ") and re.search(r"\w", line)]
    start = next(i for i, line in enumerate(lines) if line.strip() == root or line.startswith(root + " "))
    out: list[tuple[str, str | None, int | None, str | None]] = []
    parents: list[str] = []
    for line in lines[start:]:
        m = _LINE.match(line)
        assert m, f"not a line of the tree: {line!r}"
        depth = len(m["indent"]) // 4 + 1 if out else 0  # the first line is the root
        parents[depth:] = [m["name"]]
        parent = parents[depth - 1] if depth else None
        out.append((m["name"], parent, int(m["status"]) if m["status"] else None, m["code"]))
    return out


@pytest.mark.parametrize(("module", "root", "code_attr"), [(errors, "BrokerError", "code"),
                                                          (oauth_errors, "OAuthError", "error")])
def test_the_docstring_tree_is_the_class_tree(module: ModuleType, root: str, code_attr: str) -> None:
    base = getattr(module, root)
    classes = {n: c for n, c in vars(module).items() if inspect.isclass(c) and issubclass(c, base)}
    drawn = _drawn(module, root)
    assert sorted(name for name, *_ in drawn) == sorted(classes), "a class is missing from the drawing, or extra"
    for name, parent, status, code in drawn:
        cls = classes[name]
        if parent is not None:
            assert cls.__bases__ == (classes[parent],), f"{name} is drawn under {parent}"
        if status is not None:
            assert cls.status == status, name
        elif parent is not None:
            assert cls.status == classes[parent].status, f"{name} changes the status: draw it"
        if code is not None:
            assert getattr(cls, code_attr) == code, name


# ---- no raise site passes an audit reason as the message ----

_REASON_WORD = re.compile(r"^[a-z0-9]+(?:[_:][a-z0-9{}.]+)+$|^[a-z]+$")


def test_no_error_in_broker_is_given_a_reason_word_as_its_message() -> None:
    """``UpstreamRejected("wrong_audience")`` would show ``wrong_audience`` to the person and
    audit the class's default reason: every machine word goes in ``reason=``."""
    names = {n for n, c in vars(errors).items() if inspect.isclass(c) and issubclass(c, BrokerError)}
    found = []
    for path in sorted(BROKER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name not in names:
                continue
            first = node.args[0]
            text = first.value if isinstance(first, ast.Constant) else ast.unparse(first) if isinstance(
                first, ast.JoinedStr) else None
            if isinstance(text, str) and _REASON_WORD.match(text.strip("f'\"")):
                found.append(f"{path.relative_to(BROKER.parent)}:{node.lineno}: {name}({ast.unparse(first)})")
    assert not found, "\n".join(found)
