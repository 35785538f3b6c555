"""Naming-rule patterns in RE2 syntax (google-re2), matched in time linear in the group name.

Python's ``re`` backtracks: a pattern with nested quantifiers such as ``(\\w+)+`` takes
exponential time on a name that almost matches, and holds the GIL while it does, so one
person's issuance would stall the whole worker. RE2 never backtracks. Its syntax is Python's
without look-around, back-references and conditionals (https://github.com/google/re2/wiki/Syntax);
``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII-only (Python's are Unicode), ``\\Z`` is spelt ``\\z``.

A group name longer than ``MAX_GROUP_LENGTH`` characters is not tried against rules at all
(explicit mappings still match it), which bounds the work of one issuance.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TypeAlias

import re2

MAX_GROUP_LENGTH = 256
"""Group names longer than this (characters) are not tried against naming rules."""
MATCH_CACHE = 65536
"""Group names whose rule matches one matcher remembers."""

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern on stderr
_OPTIONS.max_mem = 2 << 20  # per pattern: compiled program and DFA cache; beyond it RE2 stays linear (NFA)
_SET_OPTIONS = re2.Options()
_SET_OPTIONS.log_errors = False
_SET_OPTIONS.max_mem = 32 << 20  # all rules at once

Regexp: TypeAlias = "re2._Regexp[str]"  # generic only in typings/re2.pyi


class PatternError(ValueError):
    """RE2 cannot compile the pattern; the message says why."""


def _reason(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Regexp:
    """The compiled pattern (cached: one issuance builds a snapshot, and rules rarely change)."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise PatternError(_reason(exc)) from None


class RuleMatcher:
    """Every usable rule pattern in one ``re2.Set``: one linear pass over a group name says which
    rules match; only those run again to read their ``account`` and ``role`` groups."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._compiled: list[Regexp | None] = []
        self.problems: dict[int, str] = {}
        self._index: list[int] = []  # position in the Set -> position in ``patterns``
        for i, pattern in enumerate(patterns):
            try:
                self._compiled.append(compile_pattern(pattern))
                self._index.append(i)
            except PatternError as exc:  # stored before RE2 was required: never matches
                self._compiled.append(None)
                self.problems[i] = str(exc)
        self._set: re2.Set | None = None
        if self._index:
            try:
                rset = re2.Set.FullMatchSet(_SET_OPTIONS)
                for i in self._index:
                    rset.Add(patterns[i])
                rset.Compile()
                self._set = rset
            except re2.error:  # too large as one set: each rule on its own (still linear)
                self._set = None
        # The same people sign in again and again: a name's answer is remembered (thread-safe).
        self.matches = functools.lru_cache(maxsize=MATCH_CACHE)(self._matches)

    def _matches(self, name: str) -> tuple[tuple[int, str, str], ...]:
        """(rule position, account, role) for every rule whose pattern matches all of ``name``
        (account "": the pattern has no ``account`` group; only a rule with ``accounts:`` has none)."""
        if not self._index or len(name) > MAX_GROUP_LENGTH:
            return ()
        try:
            data = name.encode("utf-8")  # bytes: RE2's own offsets, no per-call re-encoding
        except UnicodeEncodeError:  # a lone surrogate: no rule can match it
            return ()
        if self._set is None:
            candidates = self._index
        else:
            hits = self._set.Match(data)
            if not hits:
                return ()
            candidates = [self._index[k] for k in sorted(hits)]
        out: list[tuple[int, str, str]] = []
        for i in candidates:
            compiled = self._compiled[i]  # in the index, so it compiled
            m = compiled.fullmatch(data) if compiled is not None else None
            if m is not None and compiled is not None:
                account = m.group("account") if "account" in compiled.groupindex else b""
                role = m.group("role") if "role" in compiled.groupindex else None
                if account is not None and role is not None:
                    out.append((i, account.decode("utf-8"), role.decode("utf-8")))
        return tuple(out)


@functools.lru_cache(maxsize=64)
def rule_matcher(patterns: tuple[str, ...]) -> RuleMatcher:
    """The matcher for these patterns, built once while they stay the same."""
    return RuleMatcher(patterns)
