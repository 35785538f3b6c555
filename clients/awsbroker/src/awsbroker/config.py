"""`awsbroker configure`: one ``~/.aws/config`` profile per entitled role, each with a
``credential_process`` line. Idempotent: running it again changes nothing; other profiles,
comments and unrelated keys are left exactly as they were. Standard library only.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SECTION = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=")
_PROFILE_CHARS = re.compile(r"[^A-Za-z0-9_.+@-]+")


def aws_config_path() -> Path:
    return Path(os.environ.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config")


@dataclass(frozen=True)
class Profile:
    name: str
    values: dict[str, str]


def profile_name(account: str, role: str, prefix: str = "") -> str:
    return _PROFILE_CHARS.sub("-", f"{prefix}{account}-{role}")[:64]


def runnable(command: str) -> bool:
    """Whether the first word of ``command`` is a program the AWS CLI can start."""
    words = shlex.split(command)
    return bool(words) and shutil.which(words[0]) is not None


def awsbroker_command(explicit: str | None) -> str | None:
    """How the AWS CLI runs awsbroker: ``explicit``, else the absolute path of the running
    awsbroker (the AWS CLI may run with another PATH), else the one on PATH; None: not found."""
    if explicit:
        return explicit
    running = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if running is not None and running.name in ("__main__.py", "cli.py") and running.parent.name == "awsbroker" \
            and running.is_file():  # python -m awsbroker (or -m awsbroker.cli)
        return shlex.join([sys.executable, "-m", "awsbroker"])
    if running is not None and running.stem == "awsbroker" and running.is_file():
        return shlex.quote(str(running.absolute()))
    found = shutil.which("awsbroker")
    return shlex.quote(os.path.abspath(found)) if found else None


def profiles_for(roles: Iterable[Mapping[str, Any]], *, command: str, url: str | None, prefix: str = "",
                 endpoint_url: str | None = None) -> list[Profile]:
    """``endpoint_url``: the sandbox's STS (the broker says so only in sandbox mode; never for AWS)."""
    out = []
    for r in roles:
        if not r.get("cli", True):
            continue
        account = r.get("account_alias") or r["account_id"]
        words = [*shlex.split(command), "credential-process", "--account", account, "--role", r["role_name"]]
        if url:
            words += ["--url", url]
        values = {"credential_process": shlex.join(words)}
        if r.get("region"):
            values["region"] = r["region"]
        if endpoint_url:
            values["endpoint_url"] = endpoint_url
        out.append(Profile(profile_name(account, r["role_name"], prefix), values))
    return out


def apply(text: str, profiles: list[Profile]) -> str:
    """``text`` (an AWS config file) with each profile's keys set; new profiles appended."""
    lines = text.splitlines()
    wanted = {p.name: p for p in profiles}
    done: set[str] = set()
    out: list[str] = []
    current: str | None = None
    pending: dict[str, str] = {}

    def flush() -> None:
        # keys of the current profile not seen in its section: insert after its last key line
        if current is not None and pending:
            at = len(out)
            while at > 0 and not out[at - 1].strip():
                at -= 1
            out[at:at] = [f"{k} = {v}" for k, v in pending.items()]

    for line in lines:
        m = _SECTION.match(line)
        if m:
            flush()
            header = m.group(1)
            name = header[len("profile "):].strip() if header.startswith("profile ") else header
            current = name if name in wanted and name not in done else None
            pending = dict(wanted[name].values) if current else {}
            if current:
                done.add(current)
            out.append(line)
            continue
        if current is not None:
            k = _KEY.match(line)
            if k and k.group(1) in pending:
                out.append(f"{k.group(1)} = {pending.pop(k.group(1))}")
                continue
        out.append(line)
    flush()
    for p in profiles:
        if p.name in done:
            continue
        if out and out[-1].strip():
            out.append("")
        out.append(f"[profile {p.name}]")
        out.extend(f"{k} = {v}" for k, v in p.values.items())
    return "\n".join(out) + "\n"


def write(path: Path, profiles: list[Profile]) -> bool:
    """Update the file; True when it changed."""
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    after = apply(before, profiles)
    if after == before:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".awsbroker-tmp")
    tmp.write_text(after, encoding="utf-8")
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o777)
    else:
        os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return True
