"""Tables. The schema is owned by the Alembic migrations in migrations/; keep both in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


# BigInteger ids that SQLite still auto-increments (SQLite only does so for INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    alias: Mapped[str | None] = mapped_column(String(63), unique=True)
    partition: Mapped[str] = mapped_column(String(16))
    default_region: Mapped[str | None] = mapped_column(String(32))
    environment: Mapped[str | None] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    federation_path: Mapped[str] = mapped_column(String(16))
    saml_provider: Mapped[str | None] = mapped_column(String(128))
    audience: Mapped[str | None] = mapped_column(String(255))
    saml_encryption_mode: Mapped[str | None] = mapped_column(String(16))
    """allowed | required when the account takes encrypted SAML assertions (then both below are set)."""
    saml_provider_uuid: Mapped[str | None] = mapped_column(String(64))
    saml_encryption_cert: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(8), default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    roles: Mapped[list[Role]] = relationship(back_populates="account", order_by="Role.name_key")


class Role(Base):
    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("account_id", "name_key", name="uq_roles_account_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(512), default="/")
    max_session_duration: Mapped[int] = mapped_column(Integer, default=3600)
    description: Mapped[str] = mapped_column(Text, default="")
    managed_policy_arns: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    """ARNs in the mapping's order (a JSON list)."""
    source: Mapped[str] = mapped_column(String(8), default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    account: Mapped[Account] = relationship(back_populates="roles")


class Mapping(Base):
    __tablename__ = "mappings"
    __table_args__ = (
        UniqueConstraint("group_key", "role_id", name="uq_mappings_group_role"),
        Index("ix_mappings_group_key", "group_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    group_name: Mapped[str] = mapped_column(String(1024))
    group_key: Mapped[str] = mapped_column(String(1024))
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="RESTRICT"), index=True)
    session_duration: Mapped[int | None] = mapped_column(Integer)
    console: Mapped[bool] = mapped_column(Boolean, default=True)
    cli: Mapped[bool] = mapped_column(Boolean, default=True)
    access: Mapped[str] = mapped_column(String(16), default="standing", server_default="standing")
    policy: Mapped[str | None] = mapped_column(String(64))
    require_mfa: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    mfa_max_age: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(8), default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    role: Mapped[Role] = relationship()


class NamingRule(Base):
    __tablename__ = "naming_rules"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    pattern: Mapped[str] = mapped_column(String(1024))
    target: Mapped[str | None] = mapped_column(String(400))
    """The rule's ``accounts:`` (``broker.mapping.org_targets.Target.key``); none: any registered account."""
    session_duration: Mapped[int | None] = mapped_column(Integer)
    console: Mapped[bool] = mapped_column(Boolean, default=True)
    cli: Mapped[bool] = mapped_column(Boolean, default=True)
    access: Mapped[str] = mapped_column(String(16), default="standing", server_default="standing")
    policy: Mapped[str | None] = mapped_column(String(64))
    require_mfa: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    mfa_max_age: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(8), default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class OrgMapping(Base):
    """A group's role in every account of an OU or with a tag (``accounts:``): resolved against
    ``org_placement_targets`` at each resolution, so nothing is derived from it to keep in step."""

    __tablename__ = "org_mappings"
    __table_args__ = (
        UniqueConstraint("group_key", "target", "role_key", name="uq_org_mappings_group_target_role"),
        Index("ix_org_mappings_group_key", "group_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    group_name: Mapped[str] = mapped_column(String(1024))
    group_key: Mapped[str] = mapped_column(String(1024))
    target: Mapped[str] = mapped_column(String(400))
    """``broker.mapping.org_targets.Target.key``: ``ou:ou-...`` or ``tag:["key","value"]``."""
    role_name: Mapped[str] = mapped_column(String(64))
    role_key: Mapped[str] = mapped_column(String(64))
    session_duration: Mapped[int | None] = mapped_column(Integer)
    console: Mapped[bool] = mapped_column(Boolean, default=True)
    cli: Mapped[bool] = mapped_column(Boolean, default=True)
    access: Mapped[str] = mapped_column(String(16), default="standing", server_default="standing")
    policy: Mapped[str | None] = mapped_column(String(64))
    require_mfa: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    mfa_max_age: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(8), default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class OrgPlacement(Base):
    """Where AWS Organizations placed a registered account at the last discovery (discovered data:
    each ``broker org discover --apply`` rewrites it; it goes with its account)."""

    __tablename__ = "org_placements"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    ou_id: Mapped[str] = mapped_column(String(68))
    """The account's parent: an OU id, or the root id."""
    ou_path: Mapped[list[str]] = mapped_column(JSON)
    """The root id, then each OU down to the parent."""
    tags: Mapped[dict[str, str]] = mapped_column(JSON)
    discovered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OrgPlacementTarget(Base):
    """One target an account is under (each OU of its path, the root, each tag): what resolution
    looks up, indexed by target."""

    __tablename__ = "org_placement_targets"
    __table_args__ = (Index("ix_org_placement_targets_target", "target"),)

    account_id: Mapped[str] = mapped_column(
        ForeignKey("org_placements.account_id", ondelete="CASCADE"), primary_key=True
    )
    target: Mapped[str] = mapped_column(String(400), primary_key=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_actor", "actor"),
        Index("ix_audit_action", "action"),
        Index("ix_audit_target", "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="allow")
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(1100))
    request_id: Mapped[str | None] = mapped_column(String(64))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    """The hash of the row before (``broker.audit_chain``; the first row: GENESIS)."""
    hash: Mapped[str] = mapped_column(String(64))
    """Hex SHA-256 of this row's canonical form with ``prev_hash`` (``broker.audit_chain``)."""


class AuditChainHead(Base):
    """The audit chain's one row (id 1): its last id and hash, and the purge anchor (the id and
    hash of the last purged row; 0 and GENESIS before any purge). Every append updates it first,
    so appends run one at a time (its row lock on PostgreSQL, the write lock on SQLite) and ids
    are dense (``broker.db.chain``)."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    anchor_id: Mapped[int] = mapped_column(BigInteger)
    anchor_hash: Mapped[str] = mapped_column(String(64))


class ConfigSync(Base):
    """One row per synchronised document (``mapping``): the config sync's lock and its last result.

    Every start-up sync first writes this row, so syncs of workers and replicas starting together
    run one after the other (a row lock on PostgreSQL, the write lock on SQLite)."""

    __tablename__ = "config_sync"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    doc_hash: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the last synchronised document (canonical JSON)."""
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    changes: Mapped[int] = mapped_column(Integer, default=0)


class MappingVersion(Base):
    """One numbered version of the mapping: written in the transaction that changed the mapping
    (``broker.db.history``), under the mapping lock, so numbers are dense and unique. ``diff``: the
    change from the version before (zlib JSON, ``broker.mapping.versions``); ``checkpoint``: on
    some versions, the whole state then (zlib JSON), so a version is rebuilt cheaply."""

    __tablename__ = "mapping_versions"

    number: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    via: Mapped[str] = mapped_column(String(16))
    """api | import | restore | config-sync | baseline"""
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Per kind, how many objects were created, updated and deleted."""
    diff: Mapped[bytes] = mapped_column(LargeBinary)
    checkpoint: Mapped[bytes | None] = mapped_column(LargeBinary)


class ReviewSnapshot(Base):
    """An access report saved for a review (``broker.db.reviews``): its rows and CSV (zlib, see
    ``broker.reports.review_snapshot``), the SHA-256 of that CSV, the directory membership it was
    computed from, and the mapping version then. Written once, never changed."""

    __tablename__ = "review_snapshots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    request_id: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(200))
    filter: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The report's filters (account, role, group, user) that were set."""
    mapping_version: Mapped[int | None] = mapped_column(BigInteger)
    """The mapping version current then (None: the mapping had no version yet)."""
    row_count: Mapped[int] = mapped_column(Integer)
    people_count: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    csv_size: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[bytes] = mapped_column(LargeBinary)
    csv: Mapped[bytes] = mapped_column(LargeBinary)
    people: Mapped[bytes] = mapped_column(LargeBinary)


class ReviewAttestation(Base):
    """A reviewer's attestation of a snapshot (several per snapshot), audited as ``review.attest``."""

    __tablename__ = "review_attestations"
    __table_args__ = (Index("ix_review_attestations_snapshot", "snapshot_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[int] = mapped_column(BigId, ForeignKey("review_snapshots.id", ondelete="RESTRICT"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    request_id: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str | None] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")


class AuditOutbox(Base):
    """One row per (audit event, forwarding destination) not yet delivered (``broker.db.outbox``):
    written in the transaction of its audit row, deleted once the destination took the event.
    ``next_attempt_at``: when it may be sent (a claimed row's lease, a failed one's back-off)."""

    __tablename__ = "audit_outbox"
    __table_args__ = (Index("ix_audit_outbox_due", "destination", "next_attempt_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("audit_events.id"))
    destination: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(256))

    event: Mapped[AuditEvent] = relationship()


class NotificationOutbox(Base):
    """One row per (notification, webhook) not yet delivered (``broker.db.notify_outbox``): written
    in the transaction of the change it tells of where the store allows, deleted once delivered.
    ``state``: ``pending`` (``next_attempt_at``: a claimed row's lease, a failed one's back-off) or
    ``failed`` (given up: a 4xx, or ``max_attempts`` spent; kept for operators)."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_notification_outbox_due", "state", "webhook", "next_attempt_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(64), unique=True)
    webhook: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(256))


class DurableState(Base):
    """The shared state that must outlive a Redis restart: CLI logins (``broker.db.durable_state``).
    ``expires_at``: epoch milliseconds (None: never); ``index_name``: the ``set_indexed`` index."""

    __tablename__ = "durable_state"
    __table_args__ = (Index("ix_durable_state_index_name", "index_name"),
                      Index("ix_durable_state_expires_at", "expires_at"))

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    index_name: Mapped[str | None] = mapped_column(String(255))


class AccessRequest(Base):
    """A request for an eligible role (``broker.access``): pending, then approved (a time-bound
    grant from ``starts_at`` to ``ends_at``, unless ended early), denied, cancelled or expired.
    ``version`` makes every change a conditional update: two approvers at once count once."""

    __tablename__ = "access_requests"
    __table_args__ = (Index("ix_access_requests_person", "requester_id", "account_id", "role_key", "state"),
                      Index("ix_access_requests_state", "state"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    requester_id: Mapped[str] = mapped_column(String(256))
    requester: Mapped[str] = mapped_column(String(256))
    account_id: Mapped[str] = mapped_column(String(12))
    role_name: Mapped[str] = mapped_column(String(64))
    role_key: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    ticket: Mapped[str | None] = mapped_column(String(256))
    duration: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    approvals_needed: Mapped[int] = mapped_column(Integer, default=1)
    approvals: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(256))
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[str | None] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer, default=0)


class WebAuthnCredential(Base):
    """A passkey or security key a person registered as a step-up factor (``broker.mfa.passkeys``).
    ``sign_count`` changes only by a conditional update."""

    __tablename__ = "webauthn_credentials"
    __table_args__ = (Index("ix_webauthn_credentials_person", "person_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(256))
    username: Mapped[str] = mapped_column(String(256))
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    aaguid: Mapped[str] = mapped_column(String(36))
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MfaTotp(Base):
    """A person's TOTP factor (step-up MFA, ``broker.mfa``): counts once ``confirmed`` (a code
    typed at enrolment). ``secret`` is AES-GCM ciphertext when ``mfa.encryption_key_*`` is set
    (``broker.mfa.secrets``). ``last_step`` is the time step of the last accepted code, raised only
    by a conditional update (``WHERE last_step < :step``): a code is accepted once, across replicas."""

    __tablename__ = "mfa_totp"

    person_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    username: Mapped[str] = mapped_column(String(256))
    secret: Mapped[str] = mapped_column(Text)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_step: Mapped[int | None] = mapped_column(BigInteger)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MfaRecoveryCode(Base):
    """One recovery code of a person, as its SHA-256 (hex); ``used_at`` set once, conditionally."""

    __tablename__ = "mfa_recovery_codes"
    __table_args__ = (UniqueConstraint("person_id", "code_sha256", name="uq_mfa_recovery_codes_person_code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(256), index=True)
    code_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
