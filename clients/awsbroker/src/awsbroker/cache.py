"""Where `awsbroker` keeps its login and its credential cache: the user's cache directory
(``$XDG_CACHE_HOME/awsbroker``, ``~/.cache/awsbroker``; ``%LOCALAPPDATA%\\awsbroker`` on Windows),
every file written atomically with mode 0600 in a 0700 directory.

- ``login.json``: the broker URL, the access token, its expiry, the refresh token.
- ``credentials/<hash>.json``: credential_process JSON per (broker, account, role), reused until
  ``REFRESH_MARGIN`` (5 minutes) before its Expiration.

`awsbroker logout` removes all of it but the broker URL (``login.json`` keeps only ``url``), so
the next command still knows the broker and says "login required". Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REFRESH_MARGIN = timedelta(minutes=5)


def cache_dir() -> Path:
    override = os.environ.get("AWSBROKER_CACHE_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":  # pragma: no cover
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "awsbroker"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "awsbroker"


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.chmod(path, 0o700)
    except OSError:  # pragma: no cover - not our directory
        pass
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically; the file is 0600 from its first byte."""
    _private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", text=True)
    try:
        os.chmod(tmp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextmanager
def locked(name: str) -> Iterator[None]:
    """An advisory lock between awsbroker processes (an SDK may start several credential_process
    at once): one refreshes, the others then read its cache. No-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = _private_dir(cache_dir()) / f".{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ---- the login (tokens) ----


def login_path() -> Path:
    return cache_dir() / "login.json"


def load_login() -> dict[str, Any] | None:
    return read_json(login_path())


def save_login(data: dict[str, Any]) -> None:
    write_private(login_path(), json.dumps(data))


# ---- credentials ----


def credentials_path(url: str, account: str, role: str) -> Path:
    digest = hashlib.sha256(f"{url}\n{account.lower()}\n{role.lower()}".encode()).hexdigest()[:32]
    return cache_dir() / "credentials" / f"{digest}.json"


def parse_expiration(value: str) -> datetime:
    return datetime.strptime(value.replace("+00:00", "Z"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def fresh_credentials(path: Path, *, now: datetime | None = None) -> dict[str, Any] | None:
    """The cached credential_process JSON if it is still good for more than REFRESH_MARGIN."""
    data = read_json(path)
    if not data or data.get("Version") != 1:
        return None
    try:
        expiration = parse_expiration(str(data["Expiration"]))
    except (KeyError, ValueError):
        return None
    now = now or datetime.now(UTC)
    return data if expiration - now > REFRESH_MARGIN else None


def save_credentials(path: Path, data: dict[str, Any]) -> None:
    write_private(path, json.dumps(data))


def forget_everything() -> int:
    """Remove the tokens and every cached credential, keep the broker URL; the number of cached
    credentials removed."""
    removed = 0
    root = cache_dir()
    login = load_login()
    for path in sorted((root / "credentials").glob("*.json")):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    url = login.get("url") if login else None
    if isinstance(url, str) and url:
        save_login({"url": url})
    else:
        login_path().unlink(missing_ok=True)
    return removed
