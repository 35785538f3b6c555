"""The broker's configuration: one YAML file, validated by pydantic.

- Unknown keys are rejected everywhere (``extra="forbid"``).
- ``${NAME}`` (or ``${NAME:-default}``) in any string value is replaced by the environment
  variable ``NAME`` after the YAML is parsed, so a secret never has to live in the file.
  Secrets are ``SecretStr`` and never printed.
- Every problem is reported at once, each with its path (``admin.tokens[0].sha256: ...``).

Nothing reads configuration at import time: ``load_config(path)`` returns a ``Config`` and
``broker.app.create_app(config)`` wires everything from it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from broker.access_config import OAuthConfig, PortalConfig, RateLimitsConfig, SessionsConfig
from broker.aws.config import StsConfig
from broker.connectors.config import DirectoryConfig, UpstreamConfig, upstream_problems
from broker.errors import ConfigError
from broker.mapping.model import MappingDocument, reference_problems
from broker.minting.config import (
    KeysConfig,
    OidcConfig,
    SamlIdpConfig,
    SessionTagsConfig,
    key_problems,
)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class StateConfig(Section):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: SecretStr | None = None

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return value


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


class Config(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    portal: PortalConfig = Field(default_factory=PortalConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    oauth: OAuthConfig = Field(default_factory=OAuthConfig)
    """The CLI's device login (RFC 8628) and its bearer/refresh tokens."""
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)
    mapping: MappingDocument = Field(default_factory=MappingDocument)
    """Accounts, roles, mappings and rules declared here are read-only through the admin API."""
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

    @model_validator(mode="after")
    def _signing_keys(self) -> Config:
        problems = key_problems(keys=self.keys, sts_mode=self.sts.mode, workers=self.server.workers)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _upstream(self) -> Config:
        problems = upstream_problems(self.upstream, self.directory)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _mapping_references(self) -> Config:
        problems = reference_problems(self.mapping)
        if problems:
            raise ValueError("mapping: " + "; ".join(problems))
        return self


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


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("saml", "web_identity") and out.endswith("federation") or (
            part in ("saml", "oidc") and out.startswith("upstream[") and out.endswith("]")
        ):
            continue  # discriminated-union tag, not a key the user wrote
        elif (part in ("static", "ldap", "ad") and out == "directory") or (
            part in ("member_of", "group_search", "in_chain", "token_groups") and out.endswith("directory.groups")
        ):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_config(data: Any, *, source: str = "", env: dict[str, str] | None = None) -> Config:
    """Validate an already-parsed YAML document; raise ConfigError listing every problem."""
    env = dict(os.environ) if env is None else env
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["the file must contain a mapping of sections at the top level"], source=source)
    problems: list[str] = []
    expanded = _expand(data, "", env, problems)
    try:
        config = Config.model_validate(expanded)
    except ValidationError as exc:
        problems.extend(f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors())
        config = None
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
