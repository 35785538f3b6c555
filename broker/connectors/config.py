"""The ``directory:`` section: a discriminated union on ``type`` (static | ldap | ad); and the
``upstream:`` list of identity providers people may sign in through (saml | oidc).

A complete example of each type, with every option explained, is in
``config/broker.example.yaml``. The core never reads these models itself: it hands them to
``broker.connectors.registry.build_connector``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_ATTR = r"^[A-Za-z][A-Za-z0-9-]*$"
AttributeName = Annotated[str, Field(pattern=_ATTR, max_length=64)]
_HASH = re.compile(
    r"^(\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}|\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+)$"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _filter(value: str) -> str:
    """A search filter from the config: one parenthesised expression, balanced (checked once here)."""
    value = value.strip()
    depth = 0
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                break
    if not (value.startswith("(") and value.endswith(")")) or depth != 0:
        raise ValueError("must be one LDAP filter in parentheses, e.g. (objectClass=person)")
    return value


LdapFilter = Annotated[str, AfterValidator(_filter)]


class GroupCacheConfig(_Section):
    ttl_seconds: Annotated[int, Field(ge=0, le=300)] = 30
    """How long resolved groups are reused at issuance; 0 disables the cache. Account status is
    always read fresh; a removed membership stops issuance after at most this long."""


# ---- static ----


class StaticUser(_Section):
    username: Annotated[str, Field(min_length=1, max_length=256)]
    password_hash: str
    """bcrypt ($2b$...) or argon2 ($argon2id$...). Never the password itself."""
    id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    """Immutable id; default ``static:<username>``."""
    display_name: str = ""
    email: str = ""
    groups: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(default_factory=list)
    attributes: dict[str, list[str]] = Field(default_factory=dict)
    disabled: bool = False

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not _HASH.match(value):
            raise ValueError("must be a bcrypt ($2b$...) or argon2 ($argon2id$...) hash")
        return value


class StaticDirectoryConfig(_Section):
    type: Literal["static"]
    name: str = "static"
    users: list[StaticUser] = Field(default_factory=list)

    @field_validator("users")
    @classmethod
    def _unique(cls, users: list[StaticUser]) -> list[StaticUser]:
        seen: set[str] = set()
        for u in users:
            key = u.username.casefold()
            if key in seen:
                raise ValueError(f"username {u.username!r} is declared twice")
            seen.add(key)
        return users


# ---- ldap / ad ----


class MemberOfGroups(_Section):
    """Direct groups from the user's memberOf; nested ones by walking up the group entries."""

    strategy: Literal["member_of"]
    attribute: AttributeName = "memberOf"
    base: str | None = None
    """Where the group entries live (for the nested walk); default: the dc= suffix of the user search base."""
    member_attributes: Annotated[list[AttributeName], Field(min_length=1, max_length=4)] = ["member"]
    """How a group lists its member groups (for the nested walk)."""
    nested: bool = True
    max_depth: Annotated[int, Field(ge=1, le=32)] = 8


class GroupSearchGroups(_Section):
    """Groups found by searching for the user as a member: groupOfNames / groupOfUniqueNames
    (member DN), or posixGroup (``member_attribute: memberUid``, ``member_value: uid``)."""

    strategy: Literal["group_search"]
    base: str
    filter: LdapFilter = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
    member_attributes: Annotated[list[AttributeName], Field(min_length=1, max_length=4)] = [
        "member",
        "uniqueMember",
    ]
    """posixGroup: [memberUid] with member_value: uid."""
    member_value: str = "dn"
    """``dn`` (the user's DN) or a user attribute whose value the group lists (``uid``)."""
    nested: bool = True
    max_depth: Annotated[int, Field(ge=1, le=32)] = 8

    @field_validator("member_value")
    @classmethod
    def _member_value(cls, value: str) -> str:
        if value != "dn" and not re.match(_ATTR, value):
            raise ValueError("must be dn or an attribute name")
        return value


class InChainGroups(_Section):
    """Active Directory only: every group, nested included, in one search (LDAP_MATCHING_RULE_IN_CHAIN)."""

    strategy: Literal["in_chain"]
    base: str | None = None
    filter: LdapFilter = "(objectClass=group)"


class TokenGroups(_Section):
    """Active Directory only: the user's tokenGroups (security groups, nested, with the primary group)."""

    strategy: Literal["token_groups"]
    base: str | None = None


GroupsConfig = Annotated[
    MemberOfGroups | GroupSearchGroups | InChainGroups | TokenGroups, Field(discriminator="strategy")
]


class UserSearch(_Section):
    base: Annotated[str, Field(min_length=3)]
    filter: LdapFilter = "(objectClass=inetOrgPerson)"
    """ANDed with the login-attribute match."""
    login_attributes: Annotated[list[AttributeName], Field(min_length=1, max_length=8)] = ["uid"]
    """A person may sign in with any of these (uid, mail, sAMAccountName, userPrincipalName, ...)."""
    username_attribute: AttributeName = "uid"
    id_attribute: AttributeName = "entryUUID"
    display_name_attribute: AttributeName = "cn"
    email_attribute: AttributeName = "mail"
    attributes: list[AttributeName] = Field(default_factory=list)
    """Extra attributes kept on the identity (session tags)."""
    dn_template: str | None = None
    """Optional: bind straight to this DN (``uid={username},ou=people,dc=example,dc=org``), the
    username escaped by RFC 4514, instead of searching first. Lookups still use the service account."""

    @field_validator("dn_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and value.count("{username}") != 1:
            raise ValueError("must contain {username} exactly once")
        return value


class AdUserSearch(UserSearch):
    filter: LdapFilter = "(&(objectCategory=person)(objectClass=user))"
    login_attributes: Annotated[list[AttributeName], Field(min_length=1, max_length=8)] = [
        "sAMAccountName",
        "userPrincipalName",
    ]
    username_attribute: AttributeName = "sAMAccountName"
    id_attribute: AttributeName = "objectGUID"
    display_name_attribute: AttributeName = "displayName"

    @field_validator("dn_template")
    @classmethod
    def _no_template(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("not used for Active Directory (an AD DN is CN=<full name>, not the login name)")
        return value


class _DirectoryServer(_Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = "directory"
    servers: Annotated[list[str], Field(min_length=1, max_length=16)]
    """ldaps://host[:636] or ldap://host[:389], tried in order (failover)."""
    start_tls: bool = True
    """For ldap:// servers: upgrade with StartTLS before binding."""
    insecure_no_tls: bool = False
    """Allow ldap:// without StartTLS: passwords cross the network in clear. Tests only."""
    ca_file: Path | None = None
    """PEM CA bundle that signs the directory's certificate; default: the system trust store."""
    insecure_skip_verify: bool = False
    """Do not verify the directory's certificate or name. Never in production."""
    bind_dn: Annotated[str, Field(min_length=1)]
    """The service account that searches users and groups."""
    bind_password: SecretStr
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Seconds to open a TCP connection to one server (a server that refuses it is skipped at once)."""
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    """Per operation: the client waits this long for an answer (rounded up to whole seconds; a TLS
    handshake gets exactly this long in all); the server gets it as its time limit. A server that lets it pass is marked
    down: the request goes on with the next server, and other requests skip it."""
    recheck_interval: Annotated[float, Field(ge=0.1, le=60)] = 1.0
    """Seconds between checks (off the request path: a connection and a service-account bind) of a
    server marked down; requests use it again as soon as one succeeds."""
    breaker_failures: Annotated[int, Field(ge=1, le=100)] = 3
    """Consecutive failures (refused connections, failed service binds, broken new connections) that
    open a server's circuit breaker: requests skip it until the background check sees it answer. A
    timeout opens it at once (each further try would cost the whole ``timeout`` again)."""
    pool_size: Annotated[int, Field(ge=1, le=64)] = 4
    """Open connections kept for the service account (and as many for user binds)."""
    page_size: Annotated[int, Field(ge=10, le=5000)] = 1000
    cache: GroupCacheConfig = Field(default_factory=GroupCacheConfig)

    @field_validator("servers")
    @classmethod
    def _urls(cls, servers: list[str]) -> list[str]:
        for url in servers:
            parts = urlsplit(url)
            if parts.scheme not in ("ldap", "ldaps") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"{url!r}: expected ldaps://host[:port] or ldap://host[:port]")
            parts.port  # noqa: B018 - raises ValueError on a bad port
        return servers

    @model_validator(mode="after")
    def _tls(self) -> Self:
        plain = [u for u in self.servers if u.startswith("ldap://")]
        if plain and not self.start_tls and not self.insecure_no_tls:
            raise ValueError(
                "ldap:// without start_tls sends passwords in clear: use ldaps://, start_tls: true, "
                "or set insecure_no_tls: true (tests only)"
            )
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {str(self.ca_file)!r} is not a readable file")
        return self


class LdapDirectoryConfig(_DirectoryServer):
    type: Literal["ldap"]
    user_search: UserSearch
    groups: GroupsConfig = Field(default_factory=lambda: MemberOfGroups(strategy="member_of"))

    @field_validator("groups")
    @classmethod
    def _ldap_strategies(cls, value: object) -> object:
        if isinstance(value, (InChainGroups, TokenGroups)):
            raise ValueError("in_chain and token_groups are Active Directory strategies: use type: ad")  # noqa: TRY004
        return value


class AdDirectoryConfig(_DirectoryServer):
    type: Literal["ad"]
    user_search: AdUserSearch
    groups: GroupsConfig = Field(default_factory=lambda: InChainGroups(strategy="in_chain"))
    netbios_domain: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,15}$")] | None = None
    """For DOMAIN\\user logins: the domain part must be this (case-insensitive). Unset: any
    domain part is accepted and only the search base decides."""


DirectoryConfig = Annotated[
    StaticDirectoryConfig | LdapDirectoryConfig | AdDirectoryConfig, Field(discriminator="type")
]


# ---- upstream identity providers: the broker as SAML SP / OIDC RP (the ``upstream:`` list) ----

IdpName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
"""The IdP's name in URLs (``/sso/<name>/...``), logs and ``Identity.source``."""
ClaimPath = Annotated[str, Field(min_length=1, max_length=256)] | Annotated[
    list[Annotated[str, Field(min_length=1, max_length=256)]], Field(min_length=1, max_length=8)
]
"""A claim name, a dotted path into nested objects (``realm_access.roles``), or the path as a
list (``[https://example.com/claims, groups]``) when a name itself has dots. A string is first
looked up as one name, then as a dotted path."""
Skew = Annotated[int, Field(ge=0, le=180)]
_ENRICH_VALUES = Literal["username", "email", "subject"]


def loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _https_url(value: str) -> str:
    """https://..., or http:// to a loopback address only (tests, a local IdP)."""
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and loopback_host(parts.hostname):
        return value
    raise ValueError("must be an https:// URL (http:// only for a loopback address)")


class DirectoryEnrichment(_Section):
    """Look the upstream user up in the ``directory:`` and take the account from there: its
    groups, its status (re-checked at every credential issuance) and its immutable id. The IdP
    then only proves who the person is."""

    attribute: AttributeName
    """The directory attribute searched (``userPrincipalName``, ``mail``, ``uid``, ...)."""
    value: _ENRICH_VALUES = "username"
    """Which value of the upstream identity it must equal: its username, email, or subject
    (the NameID / ``sub``)."""


class SamlAttributeMap(_Section):
    """SAML attribute ``Name``s (as the IdP sends them) → identity fields. ``NameID`` means the subject's NameID."""

    username: Annotated[str, Field(min_length=1, max_length=512)] = "NameID"
    id: Annotated[str, Field(min_length=1, max_length=512)] = "NameID"
    """The immutable id (a persistent NameID, ADFS objectGUID, Entra objectidentifier)."""
    email: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    display_name: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    groups: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """A multi-valued attribute; without it (and without enrichment) the person has no groups."""


class _Upstream(_Section):
    name: IdpName
    display_name: Annotated[str, Field(max_length=80)] = ""
    """The sign-in button's text; default: the name."""
    enrich_from_directory: DirectoryEnrichment | None = None
    request_ttl_seconds: Annotated[int, Field(ge=60, le=3600)] = 600
    """How long a started sign-in may take at the IdP before its callback is refused."""
    clock_skew_seconds: Skew = 120
    """Tolerated clock difference with the IdP (at most 180 s)."""
    timeout: Annotated[float, Field(gt=0, le=60)] = 10.0
    """Seconds to wait for the IdP's metadata, discovery, keys or token endpoint."""


class SamlUpstreamMfa(_Section):
    """Which answers of this IdP count as a second factor (step-up MFA, ``broker.mfa``)."""

    authn_context_class_refs: Annotated[list[Annotated[str, Field(min_length=1, max_length=1024)]],
                                        Field(min_length=1, max_length=32)]
    """An AuthnStatement whose AuthnContextClassRef is one of these (e.g. Entra ID's
    ``http://schemas.microsoft.com/claims/multipleauthn``, ``https://refeds.org/profile/mfa``)
    counts: ``mfa_at`` is its AuthnInstant."""


class OidcUpstreamMfa(_Section):
    """Which ID tokens of this provider count as a second factor (step-up MFA, ``broker.mfa``)."""

    amr: Annotated[list[Annotated[str, Field(min_length=1, max_length=256)]], Field(max_length=32)] = Field(
        default_factory=list)
    """Any of these in the ID token's ``amr`` (RFC 8176: ``mfa``, ``otp``, ``hwk``, ...) counts."""
    acr: Annotated[list[Annotated[str, Field(min_length=1, max_length=1024)]], Field(max_length=32)] = Field(
        default_factory=list)
    """... or the ID token's ``acr`` being one of these. ``mfa_at`` is ``auth_time``, else ``iat``."""

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.amr and not self.acr:
            raise ValueError("mfa: names amr values, acr values, or both")
        return self


class SamlUpstreamConfig(_Upstream):
    type: Literal["saml"]
    metadata_file: Path | None = None
    metadata_url: str | None = None
    """Exactly one of the two. The IdP's signing certificates in it are the only keys trusted
    (a certificate inside a response's KeyInfo is never used)."""
    metadata_refresh_seconds: Annotated[int, Field(ge=300, le=7 * 86400)] = 86400
    """metadata_url only: fetched again this often (IdP certificate rollover); a failed fetch keeps the last good one."""
    idp_entity_id: str | None = None
    """Which entity to use when the metadata describes several."""
    sp_entity_id: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    """This broker's entity ID at that IdP; default ``<server.public_url>/sso/<name>/saml/metadata``."""
    want_messages_signed: bool = False
    """Also require the Response itself to be signed (the assertion always must be)."""
    allow_unsolicited: bool = False
    """Accept IdP-initiated responses (no InResponseTo). Off: every response must answer an
    AuthnRequest this browser started. Replay protection by assertion ID applies either way."""
    name_id_format: str | None = None
    """NameIDPolicy Format asked for (``urn:oasis:names:tc:SAML:2.0:nameid-format:persistent``, ...)."""
    attributes: SamlAttributeMap = Field(default_factory=SamlAttributeMap)
    mfa: SamlUpstreamMfa | None = None
    """Step-up MFA: the AuthnContextClassRefs that count as a second factor. None: none does."""

    @field_validator("metadata_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _https_url(value)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.metadata_file is None) == (self.metadata_url is None):
            raise ValueError("give exactly one of metadata_file and metadata_url")
        if self.metadata_file is not None and not self.metadata_file.is_file():
            raise ValueError(f"metadata_file {str(self.metadata_file)!r} is not a readable file")
        return self


class OidcClaimMap(_Section):
    """ID token (and userinfo) claims → identity fields. The immutable id is always ``sub``."""

    username: ClaimPath = "preferred_username"
    email: ClaimPath | None = "email"
    display_name: ClaimPath | None = "name"
    groups: ClaimPath | None = "groups"
    """A list of strings (or one string); without it (and without enrichment) the person has no groups."""


_ASYMMETRIC = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class OidcUpstreamConfig(_Upstream):
    type: Literal["oidc"]
    issuer: str
    """Exactly as the provider's discovery document states it; discovery is read from
    ``<issuer>/.well-known/openid-configuration``."""
    client_id: Annotated[str, Field(min_length=1, max_length=512)]
    client_secret: SecretStr | None = None
    """Absent for a public client (PKCE only)."""
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] | None = None
    """Default: client_secret_basic with a secret, none without."""
    scopes: Annotated[list[Annotated[str, Field(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]+$")]], Field(max_length=32)] = [
        "openid",
        "profile",
        "email",
    ]
    claims: OidcClaimMap = Field(default_factory=OidcClaimMap)
    required_claims: dict[str, str | list[str]] = Field(default_factory=dict)
    """Claims that must have one of these values, e.g. ``{hd: example.com}`` (Google Workspace
    domain) or ``{tid: <tenant id>}`` (Entra ID): otherwise the sign-in is refused."""
    userinfo: bool = False
    """Also read the userinfo endpoint and merge its claims (for providers that keep groups there)."""
    algorithms: Annotated[list[_ASYMMETRIC], Field(min_length=1)] = ["RS256", "PS256", "ES256"]
    """ID token signature algorithms accepted (asymmetric only; keys only from the provider's JWKS)."""
    jwks_refresh_min_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    """An unknown ``kid`` makes the broker fetch the JWKS again (key rotation), at most this often."""
    discovery_ttl_seconds: Annotated[int, Field(ge=60, le=86400)] = 3600
    mfa: OidcUpstreamMfa | None = None
    """Step-up MFA: the ``amr`` / ``acr`` values that count as a second factor. None: none does."""

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        value = _https_url(value)
        parts = urlsplit(value)
        if parts.query or parts.fragment:
            raise ValueError("an issuer has no query or fragment")
        return value

    @model_validator(mode="after")
    def _client(self) -> Self:
        method = self.token_endpoint_auth_method
        if method is None:
            self.token_endpoint_auth_method = "client_secret_basic" if self.client_secret is not None else "none"
        elif (method == "none") != (self.client_secret is None):
            raise ValueError("client_secret is needed with client_secret_basic/post, and not used with none")
        if "openid" not in self.scopes:
            raise ValueError("scopes must include openid")
        return self


UpstreamConfig = Annotated[SamlUpstreamConfig | OidcUpstreamConfig, Field(discriminator="type")]


def upstream_problems(
    upstream: list[SamlUpstreamConfig | OidcUpstreamConfig], directory: object | None
) -> list[tuple[str, str]]:
    """Cross-checks of the ``upstream:`` list against itself and the ``directory:`` section, as
    (path, message)."""
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for i, idp in enumerate(upstream):
        if idp.name in seen:
            problems.append((f"upstream[{i}].name", f"{idp.name!r} is used twice (also upstream[{seen[idp.name]}])"))
        seen.setdefault(idp.name, i)
        if idp.enrich_from_directory is not None and directory is None:
            problems.append((f"upstream[{i}].enrich_from_directory", "needs a directory: section"))
        if directory is not None and idp.name == getattr(directory, "name", None):
            problems.append(
                (f"upstream[{i}].name", f"{idp.name!r} is the directory's name too (Identity.source must tell them apart)")
            )
    return problems
