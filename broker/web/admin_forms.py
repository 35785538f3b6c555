"""The admin pages' forms as the admin API's bodies, and the API's errors beside their fields.

A form is turned into the same body the API takes (``MappingSpec`` / ``RuleSpec``) and
validated by the same models, so a page shows exactly the message (and stable code) the API
answers; a store error (``unknown_account``, ``duplicate``, ``read_only`` ...) lands next to the
field it concerns, or above the form.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from pydantic import ValidationError

from broker.errors import BrokerError
from broker.web.errors import error_details, validation_details

Target = Literal["account", "ou", "tag", "none"]

_FIELD_OF = {"accounts.ou": "ou", "accounts.tag": "tag", "accounts": "target", "body": ""}
"""A model's field path → the form field it is shown beside ("" : above the form)."""
_FIELD_OF_CODE = {"unknown_account": "account", "unknown_role": "role", "invalid_target": "target",
                  "invalid_ou_id": "ou", "invalid_tag": "tag"}


@dataclass
class Problems:
    """What is wrong with a form: per field, and for the form as a whole."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    form: list[str] = field(default_factory=list)
    status: int = 422

    def add(self, name: str, text: str) -> None:
        if name:
            self.fields.setdefault(name, []).append(text)
        else:
            self.form.append(text)

    def __bool__(self) -> bool:
        return bool(self.fields or self.form)


def _form_field(path: str, known: set[str]) -> str:
    path = _FIELD_OF.get(path, path)
    head = path.split(".")[0]
    if path.startswith("accounts.tag"):
        return "tag"
    return head if head in known else ""


def problems_of(exc: ValidationError | BrokerError, known: set[str]) -> Problems:
    found = Problems()
    if isinstance(exc, ValidationError):
        for d in validation_details(exc.errors()):
            name = _form_field(d["field"], known)
            name = _FIELD_OF_CODE.get(d["code"], name) if name in ("target", "") else name
            found.add(name if name in known else "", f"{d['message']} ({d['code']})")
        return found
    found.status = exc.status
    details = error_details(exc.details) or []
    placed = False
    for d in details:
        name = _form_field(str(d.get("field") or ""), known)
        if name:
            found.add(name, f"{d['message']} ({d.get('code') or exc.code})")
            placed = True
    if not placed:
        found.add(_FIELD_OF_CODE.get(exc.code, ""), f"{exc.message} ({exc.code})")
    return found


def _target_of(accounts: dict[str, Any] | None, account: str | None) -> tuple[Target, str, str]:
    if account:
        return "account", "", ""
    if accounts and accounts.get("ou"):
        return "ou", str(accounts["ou"]), ""
    if accounts and accounts.get("tag"):
        ((key, value),) = dict(accounts["tag"]).items()
        return "tag", "", f"{key}={value}"
    return "none", "", ""


def _selector(target: str, ou: str, tag: str) -> dict[str, Any] | None:
    if target == "ou":
        return {"ou": ou.strip()}
    if target == "tag":
        key, sep, value = tag.partition("=")
        return {"tag": {key.strip(): value.strip()}} if sep else {"tag": {}}
    return None


def _duration(value: str) -> int | str | None:
    """Seconds as the API's JSON number; anything else as given, for the model to refuse."""
    value = value.strip()
    digits = value.removeprefix("-")
    if digits.isascii() and digits.isdigit() and len(digits) <= 12:
        return int(value)
    return value or None


@dataclass
class MappingForm:
    group: str = ""
    target: str = "account"
    account: str = ""
    ou: str = ""
    tag: str = ""
    role: str = ""
    session_duration: str = ""
    console: bool = True
    cli: bool = True
    description: str = ""

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def of_view(cls, view: dict[str, Any]) -> MappingForm:
        target, ou, tag = _target_of(view.get("accounts"), view.get("account"))
        duration = view.get("session_duration")
        return cls(group=view["group"], target=target, account=view.get("account") or "", ou=ou, tag=tag,
                   role=view["role"], session_duration="" if duration is None else str(duration),
                   console=bool(view["console"]), cli=bool(view["cli"]), description=view.get("description") or "")

    def body(self) -> dict[str, Any]:
        """The admin API's body (``MappingSpec``) this form says."""
        body: dict[str, Any] = {"group": self.group, "role": self.role.strip(), "console": self.console,
                                "cli": self.cli, "description": self.description,
                                "session_duration": _duration(self.session_duration)}
        if self.target == "account":
            body["account"] = self.account.strip()
        else:
            body["accounts"] = _selector(self.target, self.ou, self.tag)
        return body


@dataclass
class RuleForm:
    name: str = ""
    pattern: str = ""
    target: str = "none"
    ou: str = ""
    tag: str = ""
    session_duration: str = ""
    console: bool = True
    cli: bool = True
    description: str = ""

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def of_view(cls, view: dict[str, Any]) -> RuleForm:
        target, ou, tag = _target_of(view.get("accounts"), None)
        duration = view.get("session_duration")
        return cls(name=view["name"], pattern=view["pattern"], target=target, ou=ou, tag=tag,
                   session_duration="" if duration is None else str(duration), console=bool(view["console"]),
                   cli=bool(view["cli"]), description=view.get("description") or "")

    def body(self) -> dict[str, Any]:
        """The admin API's body (``RuleSpec``) this form says."""
        body: dict[str, Any] = {"name": self.name.strip(), "pattern": self.pattern, "console": self.console,
                                "cli": self.cli, "description": self.description,
                                "session_duration": _duration(self.session_duration)}
        selector = _selector(self.target, self.ou, self.tag)
        if selector is not None:
            body["accounts"] = selector
        return body
