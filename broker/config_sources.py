"""Where a configuration value that is kept out of the YAML is read from: an environment
variable (``*_env``) or a file (``*_file``, a mounted secret). Each read that fails adds one
problem, with the key's path, to the list ``broker check-config`` and start-up report; a secret
value itself is never quoted in one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def from_env(where: str, name: str, env: Mapping[str, str], problems: list[str]) -> str | None:
    """The variable ``name``'s value, surrounding whitespace stripped; None (and a problem at
    ``where``) when it is not set or empty."""
    value = env.get(name, "").strip()
    if not value:
        problems.append(f"{where}: environment variable {name} is not set")
        return None
    return value


def from_file(where: str, file: Path | str, problems: list[str], *, base: Path | None = None) -> str | None:
    """The UTF-8 text of ``file`` (relative to ``base`` when given and the name is relative); None
    (and a problem at ``where``) when it cannot be read."""
    path = Path(file)
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{where}: cannot read {file}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}")
        return None
