"""Property-based (hypothesis): whatever YAML or JSON document reaches /import — odd scalars,
tags, anchors, nesting, duplicate keys, huge integers, encodings — the answer is a 200 or a
4xx with a stable code, never a 5xx; the mapping is unchanged by a dry run; /healthz answers."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_admin_api import CONFIG_MAPPING

FIELDS = ["version", "accounts", "mappings", "rules", "id", "alias", "roles", "name", "group", "account", "role",
          "pattern", "federation", "path", "max_session_duration", "session_duration", "console", "cli", "<<", "?"]
ODD_SCALARS = [
    "~", "null", "Null", "true", "yes", "off", "y", ".inf", "-.inf", ".nan", "0x1F", "0o17", "0b101", "1_000",
    "1:20", "012", "+12", "-0", "1e400", "2024-01-31", "2001-12-14t21:59:43.10-05:00", "'111122223333'", "111122223333",
    '"caf\\u00e9 \\U0001F600"', '"\\ud800"', "!!binary aGk=", "!!python/object:os.system {}",
    "!!python/object/apply:os.system ['true']", "!!python/name:builtins.eval", "!local x", "!<tag:x.y,2002:z> 1",
    "!!str 12", "!!int '12'", "!!float 1", "!!bool yes", "!!null ''", "!!timestamp 2024-01-01", "!!set {a}",
    "!!omap [a: 1]", "!!pairs [a: 1]", "! 12", "&a 1", "*a", "9" * 4400, "0x" + "f" * 600, "''", "'", "{", "]",
    "\t", "%YAML 1.1", "---", "...", "\u2028", "\x00", "\ufeff",
]


def _render(node) -> str:
    kind, value = node
    if kind == "raw":
        return value
    if kind == "text":
        return json.dumps(value)  # a double-quoted YAML scalar
    if kind == "list":
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return "{" + ", ".join(f"{_render(k)}: {_render(v)}" for k, v in value) + "}"


scalar = st.one_of(
    st.sampled_from(ODD_SCALARS).map(lambda s: ("raw", s)),
    st.text(max_size=20).map(lambda s: ("text", s)),
    st.integers(min_value=-(10**40), max_value=10**40).map(lambda i: ("raw", str(i))),
)
key = st.one_of(st.sampled_from(FIELDS).map(lambda s: ("raw", s)), scalar)
yaml_node = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5).map(lambda v: ("list", v)),
        st.lists(st.tuples(key, inner), max_size=5).map(lambda v: ("map", v)),
    ),
    max_leaves=40,
)
nested = st.integers(min_value=1, max_value=1200).map(lambda n: "accounts: " + "[" * n + "]" * n)
yaml_text = st.one_of(
    yaml_node.map(_render),
    st.lists(st.tuples(st.sampled_from(FIELDS), yaml_node), max_size=5).map(
        lambda items: "".join(f"{k}: {_render(v)}\n" for k, v in items)
    ),
    nested,
)
encoded_yaml = st.tuples(yaml_text, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32", "latin-1"])).map(
    lambda t: t[0].encode(t[1], errors="replace")
)

class Raw(str):
    """A JSON token written as it is (an integer of thousands of digits)."""


json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(4000, 5000).map(lambda n: Raw("9" * n)),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(st.tuples(st.sampled_from(FIELDS) | st.text(max_size=8), inner), max_size=5),  # pairs: may repeat
    ),
    max_leaves=40,
)


def _json(value) -> str:
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return "{" + ", ".join(f"{json.dumps(k)}: {_json(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json(v) for v in value) + "]"
    if isinstance(value, Raw):
        return str(value)
    return json.dumps(value)  # NaN and Infinity as Python writes them


account = st.fixed_dictionaries(
    {"id": st.sampled_from(["111122224444", "1", 111122224444, None, ""]),
     "roles": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["Dev", "AWSReservedSSO_x", "", "a" * 65])}), max_size=2)},
    optional={"alias": st.sampled_from(["dev", "DEV", "111122223333"]), "partition": st.sampled_from(["aws", "aws-cn", "x"])},
)
near_valid = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 2, "1"]), "accounts": st.lists(account, max_size=2)},
    optional={"mappings": st.lists(st.fixed_dictionaries({"group": st.text(max_size=10), "account": st.sampled_from(["dev", "111122224444"]), "role": st.just("Dev")}), max_size=2)},
)

DOCUMENTS = st.one_of(
    encoded_yaml.map(lambda b: (b, "application/yaml")),
    json_value.map(lambda v: (_json(v).encode(), "application/json")),
    near_valid.map(lambda d: (yaml.safe_dump(d).encode(), "application/yaml")),
    near_valid.map(lambda d: (json.dumps(d).encode(), "application/json")),
)


@pytest.fixture
def client(app_factory):
    return app_factory(mapping=CONFIG_MAPPING)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(doc=DOCUMENTS)
def test_any_document_gets_a_2xx_or_4xx_and_changes_nothing(client, admin_headers, doc):
    body, content_type = doc
    before = client.get("/api/v1/admin/export", params={"format": "json"}, headers=admin_headers).json()
    r = client.post("/api/v1/admin/import", content=body, headers={**admin_headers, "content-type": content_type})
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, body[:200], r.text[:300])
    if r.status_code != 200:
        assert r.json()["error"]["code"], r.text
    else:
        assert r.json()["applied"] is False
    assert client.get("/api/v1/admin/export", params={"format": "json"}, headers=admin_headers).json() == before
    assert client.get("/healthz").status_code == 200
