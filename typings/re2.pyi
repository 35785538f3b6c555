"""What broker/ uses of google-re2 (``import re2``), typed as its Python wrapper (re2.py) behaves.

google-re2 ships no types; the google-re2-stubs package on PyPI is wrong where it matters here
(``Set.Match`` returns the matching indices, not a bool; a bytes match takes ``str`` group names).
"""

from typing import AnyStr, Generic, TypeVar

_Text = TypeVar("_Text", str, bytes)  # a pattern compiled from str matches bytes too

class error(Exception): ...

class Options:
    max_mem: int
    log_errors: bool

class _Match(Generic[AnyStr]):
    def group(self, group: str | int = 0, /) -> AnyStr | None: ...

class _Regexp(Generic[AnyStr]):
    @property
    def pattern(self) -> AnyStr: ...
    @property
    def groupindex(self) -> dict[str, int]: ...
    def fullmatch(self, text: _Text, pos: int | None = None, endpos: int | None = None) -> _Match[_Text] | None: ...

def compile(pattern: AnyStr, options: Options | None = None) -> _Regexp[AnyStr]: ...

class Set:
    @classmethod
    def FullMatchSet(cls, options: Options | None = None) -> Set: ...
    def Add(self, pattern: str | bytes) -> int: ...
    def Compile(self) -> None: ...
    def Match(self, text: str | bytes) -> list[int] | None: ...
