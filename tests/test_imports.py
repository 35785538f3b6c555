"""The import graph of broker/ (and the employee CLI's package, clients/awsbroker/, when present):
no circle, and no arrow from a lower layer up.

The graph is read with ``ast`` from the source, never by importing it. Every import counts: at
module level, inside functions (a deferred import is still a dependency, only hidden), and under
``if TYPE_CHECKING:`` (a circle through annotations is still a design circle: the two modules
cannot be understood, or moved, one without the other). ``from a import b`` is an arrow to
``a.b`` when that is a module, else to ``a``; an arrow to a package's submodule also reaches the
package's ``__init__`` (Python runs it first), so a package whose ``__init__`` imports its
children is treated as one with them only through real arrows, not by name.

The forbidden directions are data (``FORBIDDEN`` below): add a rule when a layer is drawn.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _client_package() -> Path:
    """The employee CLI's package directory: ``clients/awsbroker/awsbroker`` or ``.../src/awsbroker``."""
    base = ROOT / "clients" / "awsbroker"
    for candidate in (base / "src" / "awsbroker", base / "awsbroker"):
        if (candidate / "__init__.py").is_file():
            return candidate
    return base / "awsbroker"


PACKAGES: dict[str, Path] = {"broker": ROOT / "broker", "awsbroker": _client_package()}
"""Top-level package name → its directory. A package that does not exist (yet) is skipped."""

CORE = (
    "broker.access_config",
    "broker.access_requests",
    "broker.admin_auth",
    "broker.domain",
    "broker.errors",
    "broker.audit",
    "broker.audit_forward.config",
    "broker.audit_forward.errors",
    "broker.audit_chain",
    "broker.breaker",
    "broker.break_glass",
    "broker.readiness",
    "broker.flow",
    "broker.groups",
    "broker.mapping",
    "broker.minting",
    "broker.aws",
    "broker.connectors",
    "broker.state",
    "broker.oauth",
    "broker.ratelimit",
    "broker.decisions",
    "broker.affinity",
    "broker.draining",
    "broker.config",
    "broker.config_sources",
    "broker.identity_json",
    "broker.jit",
    "broker.logins",
    "broker.logs",
    "broker.metrics",
    "broker.mfa",
    "broker.notify",
    "broker.periodic",
    "broker.redirects",
    "broker.reports",
    "broker.xml_safety",
)
"""The core: what the decisions are made of. It knows no HTTP framework and no database."""

SERVER = ("broker",)


@dataclass(frozen=True)
class Rule:
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    why: str


FORBIDDEN: tuple[Rule, ...] = (
    Rule(CORE, ("broker.web", "broker.db", "broker.app", "broker.services", "broker.cli"),
         "the core is called by the web layer and the database layer, never the other way round"),
    Rule(("broker.db",), ("broker.web", "broker.app", "broker.services", "broker.cli"),
         "the database layer serves the web layer and the CLIs; it knows neither"),
    Rule(("broker.audit_forward",), ("broker.web", "broker.app", "broker.services", "broker.cli"),
         "the audit forwarder works the outbox (broker.db) for the composition root; it knows no router or CLI"),
    Rule(("broker.notify_worker",), ("broker.web", "broker.app", "broker.services", "broker.cli"),
         "the notification worker works its outbox (broker.db) for the composition root; it knows no router or CLI"),
    Rule(("broker.db",), ("broker.audit_forward", "broker.notify_worker"),
         "the outbox rows are the database's; sending them is the forwarder's, which uses db/, not the reverse"),
    Rule(("broker.state",), ("broker.config",),
         "state/ takes what it needs as arguments or its own StateConfig; broker.config composes it"),
    Rule(("broker.aws",), ("broker.connectors",),
         "AWS (sandbox included) does not depend on directory/IdP connectors: shared code lives in a neutral module"),
    Rule(("broker.connectors",), ("broker.minting", "broker.aws"),
         "connectors say who someone is; what they are issued is minting's and aws's"),
    Rule(("broker.web",), ("broker.app",),
         "routers get the services through broker.web.deps, never from the composition root"),
    Rule(("broker.web",), ("broker.db",),
         "the edge reaches storage through the services' store (the MappingStore Protocol), never db/ itself"),
    Rule((*CORE, "broker.web", "broker.db", "broker.app", "broker.services"), ("broker.serving",),
         "broker.serving runs processes and servers for `broker serve`; what it serves never knows it (broker.draining is the shared flag)"),
    Rule(("awsbroker",), SERVER,
         "the employee CLI is its own distribution: it talks HTTP to the broker, it imports nothing server-side"),
)
"""(who, may not import whom, why). A name covers the module and everything under it."""

ROUTERS = (
    "broker.web.admin_api",
    "broker.web.admin_pages",
    "broker.web.admin_pages_edit",
    "broker.web.admin_request_pages",
    "broker.web.admin_requests",
    "broker.web.admin_review_pages",
    "broker.web.admin_reports",
    "broker.web.admin_reviews",
    "broker.web.api_docs",
    "broker.web.audit_api",
    "broker.web.break_glass",
    "broker.web.device",
    "broker.web.federation",
    "broker.web.history_api",
    "broker.web.ops",
    "broker.web.portal",
    "broker.web.requests_api",
    "broker.web.upstream",
    "broker.web.user_api",
)
"""Routers depend on typed dependencies and shared helpers, never on one another."""


def _module_name(package: str, base: Path, path: Path) -> str:
    parts = [package, *path.relative_to(base).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the packages present: dotted name → file."""
    found: dict[str, Path] = {}
    for package, base in PACKAGES.items():
        if not (base / "__init__.py").is_file():
            continue
        for path in sorted(base.rglob("*.py")):
            found[_module_name(package, base, path)] = path
    return found


def _is_package(name: str, known: dict[str, Path]) -> bool:
    return name in known and known[name].name == "__init__.py"


def _resolve(current: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = current.split(".") if is_pkg else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _known_prefix(name: str, known: dict[str, Path]) -> str | None:
    """The longest module of ours that ``name`` is or lies in (``broker.web.deps.X`` → ``broker.web.deps``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """(imported module of ours, line) for every import statement anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _known_prefix(alias.name, known)
                if target is not None:
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, is_pkg, node)
            for alias in node.names:
                full = f"{module}.{alias.name}"
                target = full if full in known else _known_prefix(module, known)
                if target is not None:
                    yield target, node.lineno


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    where: str
    """file:line of the import statement."""


def graph() -> dict[str, list[Arrow]]:
    """Module → its arrows to other modules of ours (self-imports dropped)."""
    known = modules()
    out: dict[str, list[Arrow]] = {}
    for name, path in known.items():
        arrows: dict[str, Arrow] = {}
        for target, line in imports_of(name, path, known):
            if target != name and target not in arrows:
                arrows[target] = Arrow(name, target, f"{path.relative_to(ROOT)}:{line}")
        out[name] = sorted(arrows.values(), key=lambda a: a.target)
    return out


@dataclass(frozen=True)
class Circle:
    members: frozenset[str]
    """Every module of the tangle (a strongly connected component): each reaches every other."""
    shortest: tuple[Arrow, ...]
    """One shortest circle through its first module: a place to start cutting."""


def cycles(edges: dict[str, list[Arrow]]) -> list[Circle]:
    """One entry per strongly connected component of more than one module (Tarjan), with a
    shortest circle inside it (breadth-first), so a report names the tangle and a circle to break."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0

    def strongconnect(start: str) -> None:  # iterative: the graph is deep enough for recursion limits
        nonlocal counter
        work: list[tuple[str, Iterator[Arrow]]] = [(start, iter(edges.get(start, [])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for arrow in children:
                child = arrow.target
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, []))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)

    for node in sorted(edges):
        if node not in index:
            strongconnect(node)

    found: list[Circle] = []
    for component in components:
        start = min(component)
        # the shortest path start → ... → start inside the component
        paths: dict[str, list[Arrow]] = {start: []}
        queue = [start]
        circle: list[Arrow] | None = None
        while queue and circle is None:
            node = queue.pop(0)
            for arrow in edges.get(node, []):
                if arrow.target == start:
                    circle = [*paths[node], arrow]
                    break
                if arrow.target in component and arrow.target not in paths:
                    paths[arrow.target] = [*paths[node], arrow]
                    queue.append(arrow.target)
        assert circle is not None
        found.append(Circle(frozenset(component), tuple(circle)))
    return sorted(found, key=lambda c: min(c.members))


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(edges: dict[str, list[Arrow]], rules: Iterable[Rule] = FORBIDDEN) -> list[tuple[Rule, Arrow]]:
    found = []
    for rule in rules:
        for source in sorted(edges):
            if not _under(source, rule.sources):
                continue
            for arrow in edges[source]:
                if _under(arrow.target, rule.targets):
                    found.append((rule, arrow))
    return found


def _describe(circle: Circle) -> str:
    arrows = circle.shortest
    names = " -> ".join([arrows[0].source, *(a.target for a in arrows)])
    lines = "\n".join(f"      {a.source} -> {a.target}  ({a.where})" for a in arrows)
    return (f"  {len(circle.members)} modules tangled: {', '.join(sorted(circle.members))}\n"
            f"    a shortest circle: {names}\n{lines}")


# ---- the rules ----


def test_every_module_has_a_layer() -> None:
    """A module no rule covers can import anything unseen: each belongs to the core, a layer
    above it, or the root (a new top-level module gets its place in CORE or here)."""
    placed = (*CORE, "broker.web", "broker.db", "broker.audit_forward", "broker.notify_worker", "broker.cli", "broker.app", "broker.services",
              "broker.serving", "broker._conformance", "broker.__main__", "awsbroker")
    unplaced = [m for m in graph() if m != "broker" and not _under(m, placed)]
    assert not unplaced, f"modules in no layer of tests/test_imports.py: {unplaced}"


def test_the_graph_is_read() -> None:
    """The walk finds the modules and the arrows it should (a broken walker passes everything)."""
    edges = graph()
    assert "broker.flow" in edges and "broker.web.deps" in edges
    assert any(a.target == "broker.errors" for a in edges["broker.flow"])
    assert any(a.target == "broker.web.deps" for a in edges["broker.web.portal"])


def test_no_import_circle() -> None:
    found = cycles(graph())
    assert not found, (
        f"{len(found)} import circle(s) (imports inside functions and under TYPE_CHECKING count too); "
        "break each by moving what both sides need into a module of its own, below both:\n"
        + "\n".join(_describe(c) for c in found)
    )


def test_no_forbidden_direction() -> None:
    found = violations(graph())
    assert not found, "imports against the layering (tests/test_imports.py FORBIDDEN):\n" + "\n".join(
        f"  {arrow.source} -> {arrow.target}  ({arrow.where}): {rule.why}" for rule, arrow in found
    )


def test_routers_do_not_import_each_other() -> None:
    edges = graph()
    found = [a for r in ROUTERS for a in edges.get(r, []) if a.target in ROUTERS]
    assert not found, "routers import other routers; share through broker.web.deps / pages / a helper module:\n" + "\n".join(
        f"  {a.source} -> {a.target}  ({a.where})" for a in found
    )


def test_only_the_composition_root_knows_every_router() -> None:
    edges = graph()
    importers = {m for m, arrows in edges.items() for a in arrows if a.target in ROUTERS} - set(ROUTERS)
    assert importers <= {"broker.app"}, f"only create_app mounts routers; also imported by: {sorted(importers - {'broker.app'})}"


# ---- the checker checks (it must see what it is meant to see) ----


def _edges(*pairs: str) -> dict[str, list[Arrow]]:
    out: dict[str, list[Arrow]] = {}
    for pair in pairs:
        source, target = pair.split(">")
        out.setdefault(source, []).append(Arrow(source, target, "x.py:1"))
        out.setdefault(target, [])
    return out


def test_cycles_are_found_and_named() -> None:
    assert cycles(_edges("a>b", "b>c")) == []
    (circle,) = cycles(_edges("a>b", "b>c", "c>a", "c>d", "b>a"))
    assert circle.members == {"a", "b", "c"}
    assert [(a.source, a.target) for a in circle.shortest] == [("a", "b"), ("b", "a")]
    assert len(cycles(_edges("a>b", "b>a", "x>y", "y>x"))) == 2
    assert "a -> b -> a" in _describe(cycles(_edges("a>b", "b>a"))[0])


def test_forbidden_directions_cover_subpackages() -> None:
    rule = Rule(("broker.state",), ("broker.config",), "why")
    assert violations(_edges("broker.state.redis>broker.config"), [rule])
    assert not violations(_edges("broker.statex>broker.config", "broker.state>broker.config_x"), [rule])


def test_imports_in_functions_and_type_checking_count(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from broker.web.deps import ServicesDep\n"
        "def f():\n    import broker.db.models\n    from broker.web import portal\n    from . import sibling\n"
    )
    known = {"pkg.m": source, "pkg.sibling": tmp_path / "sibling.py", "broker.web.deps": source,
             "broker.db.models": source, "broker.web.portal": source, "broker.web": tmp_path / "__init__.py"}
    assert {t for t, _ in imports_of("pkg.m", source, known)} == {
        "broker.web.deps", "broker.db.models", "broker.web.portal", "pkg.sibling"}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_packages_are_walked_when_present(package: str) -> None:
    present = (PACKAGES[package] / "__init__.py").is_file()
    assert present == any(m == package or m.startswith(package + ".") for m in graph())
