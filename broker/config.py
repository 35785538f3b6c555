"""The broker's configuration: one YAML file, validated by pydantic.

- Unknown keys are rejected everywhere (``extra="forbid"``).
- ``${NAME}`` (or ``${NAME:-default}``) in any string value is replaced by the environment
  variable ``NAME`` after the YAML is parsed, so a secret never has to live in the file.
  Secrets are ``SecretStr`` and never printed.
- Every problem is reported at once, each with its path (``admin.tokens[0].sha256: ...``):
  field errors, unknown keys (``server.pubilc_url: unknown key (did you mean 'public_url'?)``)
  and cross-references (``mapping.mappings[2].account: ...``, ``keys.current: ...``,
  ``upstream[1].name: ...``). Cross-references are checked by ``cross_problems`` over the
  sections that are valid on their own, so they appear in the same pass as field errors.

Nothing reads configuration at import time: ``load_config(path)`` returns a ``Config`` and
``broker.app.create_app(config)`` wires everything from it.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from broker.access_config import OAuthConfig, PortalConfig, RateLimitsConfig, SessionsConfig
from broker.audit_forward.config import AuditDestination, unique_names
from broker.aws.config import DoctorConfig, IamAccessConfig, OrganizationsConfig, StsConfig
from broker.break_glass import config as break_glass_config
from broker.break_glass.config import BreakGlassConfig
from broker.config_sources import from_file
from broker.connectors.config import DirectoryConfig, UpstreamConfig, upstream_problems
from broker.errors import ConfigError
from broker.jit.policy import AccessPolicies, JitConfig
from broker.mapping.model import AccountSpec, MappingDocument, MappingSpec, RuleSpec, reference_issues
from broker.mfa.config import MfaConfig
from broker.minting.config import (
    KeysConfig,
    OidcConfig,
    SamlIdpConfig,
    SessionTagsConfig,
    key_problems,
)
from broker.notify.config import NotificationsConfig
from broker.state.config import StateConfig

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


SHUTDOWN_LIMIT_SECONDS = 30
"""server.drain_seconds + server.shutdown_grace_seconds stay below it: Kubernetes' default
terminationGracePeriodSeconds (SIGKILL after it)."""


class ServerConfig(Section):
    public_url: Annotated[str, Field(pattern=r"^https?://[^\s?#]+$")] = "http://127.0.0.1:8000"
    """The URL employees and AWS reach the broker at; the OIDC issuer. https:// in production."""
    docs: bool = True
    """The API reference at /docs (Swagger UI served by the broker) and the schema at /openapi.json;
    false turns both off (404)."""
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    cpu_affinity: bool = False
    """With several workers: keep each worker process on one CPU (Linux; see broker/affinity.py)."""
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list, max_length=256)
    """Reverse proxies / load balancers (addresses or CIDRs) whose X-Forwarded-For, RFC 7239
    Forwarded and X-Forwarded-Proto headers are believed; the client address is the first
    untrusted one from the right. Empty (the default): nobody is trusted, the connection's peer
    is the client (broker.web.client_address)."""
    drain_seconds: Annotated[float, Field(ge=0, le=25)] = 5
    """On SIGTERM or SIGINT: how long each worker keeps accepting and serving while /readyz
    already answers 503 "draining" (the preStop pattern: the time a load balancer or Kubernetes
    needs to stop sending it new connections). 0: stop accepting at once (broker.serving)."""
    shutdown_grace_seconds: Annotated[int, Field(ge=1, le=28)] = 20
    """After the drain: how long the requests in flight get to finish once the worker stops
    accepting (uvicorn's timeout_graceful_shutdown, whole seconds); those still running then are cut."""
    keepalive_seconds: Annotated[int, Field(ge=1, le=3600)] = 75
    """How long an idle HTTP keep-alive connection stays open (uvicorn's timeout_keep_alive). Keep it
    longer than the idle timeout of the proxy in front (nginx upstream ``keepalive_timeout``,
    ingress-nginx ``upstream-keepalive-timeout`` and AWS ALB idle timeout: 60 s by default), so the
    proxy closes an idle connection first: a broker closing one as the proxy sends a request on it
    resets that request (a POST is not retried)."""

    @model_validator(mode="after")
    def _stops_within_kubernetes_default(self) -> ServerConfig:
        total = self.drain_seconds + self.shutdown_grace_seconds
        if total >= SHUTDOWN_LIMIT_SECONDS:
            raise ValueError(
                f"drain_seconds + shutdown_grace_seconds is {total:g} s: it must stay below {SHUTDOWN_LIMIT_SECONDS} s "
                "(Kubernetes' default terminationGracePeriodSeconds, after which the pod is killed; the worker "
                "still closes its connections after both)"
            )
        return self

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


class DatabaseConfig(Section):
    url: str = "sqlite:///./broker.db"
    """SQLAlchemy URL: sqlite:///path.db (embedded) or postgresql+psycopg://user:pw@host/db."""
    password: SecretStr | None = None
    """Optional: kept out of the URL so it can come from ${ENV}."""
    pool_size: Annotated[int, Field(ge=1, le=200)] = 10
    auto_migrate: bool = False
    """Run the migrations at start-up (the demo does; production runs `broker migrate`)."""
    echo: bool = False


class AdminToken(Section):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")]
    """Who this token is: the actor recorded in the audit log."""
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    """Hex SHA-256 of the token (`broker admin-token` makes one). The token itself is never stored."""


class AdminConfig(Section):
    tokens: list[AdminToken] = Field(default_factory=list)
    bootstrap_token_env: str = "BROKER_ADMIN_TOKEN"
    """When this environment variable is set, its value is also an admin token (actor "bootstrap")."""
    max_page_size: Annotated[int, Field(ge=1, le=10000)] = 500
    directory_groups: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list)
    """Members of these directory groups are admins too: HTTP Basic with their directory password
    (actor ``directory:<username>``). Matched like mappings (case-insensitive, DN → name)."""


class ApiConfig(Section):
    password_login: bool = False
    """Accept HTTP Basic (directory username + password) on the user API, for headless use
    (scripts, CI). Off by default: people use the portal or the CLI's device login."""


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"
    access_log: bool = True


class AuditConfig(Section):
    forward: list[AuditDestination] = Field(default_factory=list, max_length=16)
    """Destinations every audit event is also sent to (syslog, webhook), through the outbox
    (broker.audit_forward). Empty (the default): nothing is forwarded and no outbox row is written."""
    forward_interval_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    """How often the forwarder of each worker looks for pending events."""

    @field_validator("forward")
    @classmethod
    def _unique(cls, value: list[Any]) -> list[Any]:
        unique_names(value)
        return value
    retention_days: Annotated[int, Field(ge=1, le=36500)] | None = None
    """Audit rows older than this many days are deleted by a purge (`broker audit purge`,
    POST /api/v1/admin/audit/purge), oldest first, behind a chain anchor. None (the default):
    kept forever, and a purge refuses to run."""


class Config(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    """The audit trail: how long it is kept (``retention_days``), where it is forwarded (``forward``)."""
    portal: PortalConfig = Field(default_factory=PortalConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    oauth: OAuthConfig = Field(default_factory=OAuthConfig)
    """The CLI's device login (RFC 8628) and its bearer/refresh tokens."""
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)
    mapping: MappingDocument = Field(default_factory=MappingDocument)
    """Accounts, roles, mappings and rules declared here are read-only through the admin API."""
    jit: JitConfig = Field(default_factory=JitConfig)
    """Just-in-time access: the access policies that mappings and rules with ``access: eligible`` name."""
    mfa: MfaConfig = Field(default_factory=MfaConfig)
    """Second factors at the broker: what ``require_mfa: true`` accepts, the TOTP secrets' encryption
    key, passkeys and security keys (``mfa.webauthn``) (broker.mfa)."""
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    """Webhooks (Slack, Teams, JSON) that access policies notify (broker.notify)."""
    directory: DirectoryConfig | None = None
    """Where people sign in and their groups come from (static | ldap | ad); broker.connectors.config."""
    upstream: list[UpstreamConfig] = Field(default_factory=list)
    """Upstream identity providers people may sign in through (SAML IdPs, OIDC providers)."""
    keys: KeysConfig | None = None
    """Signing key files (current, optional next). Absent: an ephemeral key (sandbox/demo only)."""
    saml_idp: SamlIdpConfig = Field(default_factory=SamlIdpConfig)
    oidc: OidcConfig = Field(default_factory=OidcConfig)
    session_tags: SessionTagsConfig = Field(default_factory=SessionTagsConfig)
    sts: StsConfig = Field(default_factory=StsConfig)
    doctor: DoctorConfig = Field(default_factory=DoctorConfig)
    """`broker doctor`: how to read IAM in each account (an audit role to assume, or ambient credentials)."""
    revoke: IamAccessConfig = Field(default_factory=IamAccessConfig)
    """`broker revoke --apply`: how to write the revocation policy in each account."""
    organizations: OrganizationsConfig | None = None
    """`broker org discover`: the accounts AWS Organizations lists (read-only), registered on --apply."""
    break_glass: BreakGlassConfig | None = None
    """Break-glass accounts (broker.break_glass): static, TOTP, only while the directory is down."""


def _expand(node: Any, path: str, env: dict[str, str], problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), env, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(repl, node)
    return node


def _certificate_files(data: dict[str, Any], problems: list[str]) -> None:
    """``certificate_file: PATH`` of an account's ``assertion_encryption`` (a config-file-only key:
    the admin API takes the PEM itself, it never reads the broker's files) read into ``certificate``."""
    mapping = data.get("mapping")
    accounts = mapping.get("accounts") if isinstance(mapping, dict) else None
    for i, account in enumerate(accounts if isinstance(accounts, list) else []):
        federation = account.get("federation") if isinstance(account, dict) else None
        encryption = federation.get("assertion_encryption") if isinstance(federation, dict) else None
        if not isinstance(encryption, dict) or "certificate_file" not in encryption:
            continue
        path = f"mapping.accounts[{i}].federation.assertion_encryption.certificate_file"
        name = encryption.pop("certificate_file")
        if "certificate" in encryption:
            problems.append(f"{path}: give certificate (the PEM) or certificate_file, not both")
            continue
        text = from_file(path, str(name), problems)
        if text is not None:
            encryption["certificate"] = text


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("saml", "web_identity") and out.endswith("federation") or (
            part in ("saml", "oidc") and out.startswith("upstream[") and out.endswith("]")
        ):
            continue  # discriminated-union tag, not a key the user wrote
        elif part in ("syslog", "webhook") and out.startswith("audit.forward[") and out.endswith("]") or (part in ("static", "ldap", "ad") and out == "directory") or (
            part in ("member_of", "group_search", "in_chain", "token_groups") and out.endswith("directory.groups")
        ):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _members(tp: Any) -> list[Any]:
    """The types a (possibly Annotated, Optional or union) annotation stands for."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) for m in _members(arg)]
    return [tp]


def _step(tp: Any, part: Any) -> Any:
    """The annotation one step of a pydantic error location further in (None: unknown)."""
    members = _members(tp)
    if isinstance(part, int):
        items = [get_args(m)[0] for m in members if get_origin(m) in (list, tuple) and get_args(m)]
        return Union[tuple(items)] if items else None  # noqa: UP007 - built from a runtime tuple
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    for m in models:
        if part in m.model_fields:
            return m.model_fields[part].annotation
    tagged = [
        m for m in models
        if any(part in get_args(f.annotation) for f in m.model_fields.values() if get_origin(f.annotation) is Literal)
    ]
    if tagged:  # a discriminated union's tag in the location: the member it chose
        return Union[tuple(tagged)]  # noqa: UP007
    dicts = [get_args(m)[1] for m in members if get_origin(m) is dict and len(get_args(m)) == 2]
    return dicts[0] if dicts else None


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section holding ``loc[-1]`` accepts (for "did you mean")."""
    tp: Any = Config
    for part in loc[:-1]:
        tp = _step(tp, part)
        if tp is None:
            return []
    models = [m for m in _members(tp) if isinstance(m, type) and issubclass(m, BaseModel)]
    return sorted({name for m in models for name in m.model_fields})


def _message(error: Any) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
        known = _known_keys(loc)
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        if close:
            return f"{_loc(loc)}: unknown key (did you mean {close[0]!r}?)"
        return f"{_loc(loc)}: unknown key" + (f" (known here: {', '.join(known)})" if known else "")
    return f"{_loc(loc)}: {error['msg']}"


def _valid_sections(data: dict[str, Any]) -> dict[str, Any]:
    """Each top-level section validated on its own: the ones that are valid (absent ones at their
    default), so cross-section checks run even when another section has errors."""
    out: dict[str, Any] = {}
    for name, field in Config.model_fields.items():
        if name not in data:
            out[name] = field.get_default(call_default_factory=True)
            continue
        try:
            out[name] = getattr(Config.model_validate({name: data[name]}), name)
        except ValidationError:
            section = _partial_mapping(data[name]) if name == "mapping" else _partial_section(field.annotation, data[name])
            if section is not None:
                out[name] = section
    return out


def _partial_section(model: Any, raw: Any) -> BaseModel | None:
    """A section with its invalid keys at their defaults (their errors are reported already)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel) and isinstance(raw, dict)):
        return None
    good = {}
    for key, value in raw.items():
        try:
            model.model_validate({key: value})
        except ValidationError:
            continue
        good[key] = value
    try:
        return model.model_validate(good)
    except ValidationError:
        return None


def _partial_mapping(raw: Any) -> MappingDocument | None:
    """The mapping with its invalid list items as None (reference_issues skips them), or None
    when the accounts themselves do not validate (every reference would look dangling)."""
    if not isinstance(raw, dict):
        return None
    try:
        accounts = [AccountSpec.model_validate(a) for a in raw.get("accounts") or []]
    except ValidationError:
        return None

    def items(kind: type[BaseModel], key: str) -> list[Any]:
        values = raw.get(key) or []
        out: list[Any] = []
        for value in values if isinstance(values, list) else []:
            try:
                out.append(kind.model_validate(value))
            except ValidationError:
                out.append(None)
        return out

    return MappingDocument.model_construct(
        accounts=accounts, mappings=items(MappingSpec, "mappings"), rules=items(RuleSpec, "rules")
    )


def policy_problems(mapping: MappingDocument, policies: AccessPolicies) -> list[tuple[str, str]]:
    """Eligible mappings and rules that name an access policy the file does not declare."""
    found = []
    for kind, items in (("mappings", mapping.mappings), ("rules", mapping.rules)):
        for i, item in enumerate(items):
            if item is not None and item.policy is not None and item.policy not in policies:
                known = ", ".join(sorted(policies)) or "none is declared"
                found.append((f"mapping.{kind}[{i}].policy",
                               f"no access policy {item.policy!r} in jit.policies ({known})"))
    return found


def webhook_problems(policies: AccessPolicies, notifications: NotificationsConfig) -> list[tuple[str, str]]:
    """Access policies whose ``notify:`` names a webhook ``notifications.webhooks`` does not declare."""
    known = ", ".join(sorted(notifications.webhooks)) or "none is declared"
    return [(f"jit.policies.{name}.notify[{i}]", f"no webhook {hook!r} in notifications.webhooks ({known})")
            for name, policy in policies.items() for i, hook in enumerate(policy.notify)
            if hook not in notifications.webhooks]


def cross_problems(sections: dict[str, Any]) -> list[str]:
    """Problems between objects and sections, each with its path: the signing keys against
    ``sts.mode`` and ``server.workers``, ``upstream:`` against itself and ``directory:``, the
    mapping's references. ``sections`` holds the validated sections (a missing one: skipped)."""
    found: list[tuple[str, str]] = []
    if {"keys", "sts", "server"} <= sections.keys():
        found += key_problems(keys=sections["keys"], sts_mode=sections["sts"].mode, workers=sections["server"].workers)
    if {"upstream", "directory"} <= sections.keys():
        found += upstream_problems(sections["upstream"], sections["directory"])
    mapping = sections.get("mapping")
    if mapping is not None:
        found += [(f"mapping.{path}", message) for path, message in reference_issues(mapping)]
        if "jit" in sections:
            found += policy_problems(mapping, sections["jit"].policies)
    if sections.get("break_glass") is not None:
        found += break_glass_config.problems(
            sections["break_glass"], mapping=mapping, directory=sections.get("directory"),
            upstream=sections.get("upstream"),
            webhooks=None if sections.get("notifications") is None else sections["notifications"].webhooks)
    if {"jit", "notifications"} <= sections.keys():  # a policy's webhooks are declared
        found += webhook_problems(sections["jit"].policies, sections["notifications"])
    return [f"{path}: {message}" for path, message in found]


def parse_config(data: Any, *, source: str = "", env: dict[str, str] | None = None) -> Config:
    """Validate an already-parsed YAML document; raise ConfigError listing every problem, each
    with its path: field errors, unknown keys (with "did you mean") and cross-references alike."""
    env = dict(os.environ) if env is None else env
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["the file must contain a mapping of sections at the top level"], source=source)
    problems: list[str] = []
    expanded = _expand(data, "", env, problems)
    _certificate_files(expanded, problems)
    break_glass_config.load_secrets(expanded, env, problems, base=Path(source).parent if source else None)
    config: Config | None = None
    try:
        config = Config.model_validate(expanded)
    except ValidationError as exc:
        problems.extend(_message(e) for e in exc.errors())
    if config is not None:
        problems += cross_problems({name: getattr(config, name) for name in Config.model_fields})
    else:
        problems += cross_problems(_valid_sections(expanded))
    if problems:
        raise ConfigError(problems, source=source)
    assert config is not None
    return config


def load_config(path: str | os.PathLike[str] | None = None, *, env: dict[str, str] | None = None) -> Config:
    """Read and validate the YAML file at ``path`` (default: $BROKER_CONFIG)."""
    env = dict(os.environ) if env is None else env
    path = path or env.get("BROKER_CONFIG")
    if not path:
        raise ConfigError(["no configuration file given (--config FILE or BROKER_CONFIG)"])
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read the file: {exc.strerror}"], source=str(p)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"], source=str(p)) from None
    return parse_config(data, source=str(p), env=env)
