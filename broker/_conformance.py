"""Every ``Protocol`` of the broker and the classes that implement it, checked by mypy (``make lint``).

A Protocol is structural: nothing at run time says that ``RedisState`` still is a ``StateStore``
after someone changes one of them. Each line below assigns an implementation to ``type[Protocol]``,
so ``mypy --strict`` compares every member (names, parameters, keyword-only markers, return
types) and fails on the first drift, where the class is named. Nothing here runs: the imports are
for the type checker only, so importing this module loads nothing, and no module imports it.

It sits beside the composition root (``broker.app``): it may name every room. A new Protocol gets
its lines here (tests/test_protocol_conformance.py fails on a Protocol that has none); a new
implementation of an existing one too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from awsbroker.delivery import Credentials, ParsedCredentials
    from broker.audit_forward.forwarder import Sender
    from broker.audit_forward.syslog import SyslogSender
    from broker.audit_forward.webhook import WebhookSender
    from broker.aws import ConsoleSignin, CredentialsIssuer
    from broker.aws.sandbox import SandboxConsole
    from broker.aws.signin import FederationSignin
    from broker.aws.sts import StsGateway
    from broker.connectors.ad import AdConnector
    from broker.connectors.base import (
        AttributeLookupConnector,
        BreakerConnector,
        CallbackConnector,
        InspectConnector,
        LookupConnector,
        MembersConnector,
        PasswordConnector,
        ProbeConnector,
        SAMLConnector,
    )
    from broker.connectors.ldap import LdapConnector
    from broker.connectors.ldap_groups import (
        GroupResolver,
        GroupSearch,
        InChain,
        MemberOf,
        TokenGroupsResolver,
    )
    from broker.connectors.oidc_rp import OidcRelyingParty
    from broker.connectors.saml_sp import SamlServiceProvider
    from broker.connectors.static import StaticConnector
    from broker.db.durable_state import DatabaseState
    from broker.db.mfa_store import SqlFactorStore
    from broker.db.notify_outbox import OutboxNotifier
    from broker.db.requests_store import SqlRequestStore
    from broker.db.store import SqlMappingStore
    from broker.db.webauthn_store import SqlWebAuthnStore
    from broker.domain import TemporaryCredentials
    from broker.flow import DecisionLog
    from broker.jit import RequestStore
    from broker.mapping.store import MappingStore
    from broker.mfa.credentials import WebAuthnCredentialStore
    from broker.mfa.store import FactorStore
    from broker.minting import SamlIssuer, TokenIssuer
    from broker.minting.oidc_issuer import OidcIssuer
    from broker.minting.saml_idp import SamlIdp
    from broker.notify import Notifier
    from broker.state.base import StateStore
    from broker.state.memory import MemoryState
    from broker.state.redis import RedisState

    # ---- directories (connectors/base.py): each capability a connector offers ----
    _static_password: type[PasswordConnector] = StaticConnector
    _static_lookup: type[LookupConnector] = StaticConnector
    _static_find_by: type[AttributeLookupConnector] = StaticConnector
    _static_inspect: type[InspectConnector] = StaticConnector
    _static_members: type[MembersConnector] = StaticConnector
    _static_probe: type[ProbeConnector] = StaticConnector
    _ldap_password: type[PasswordConnector] = LdapConnector
    _ldap_lookup: type[LookupConnector] = LdapConnector
    _ldap_find_by: type[AttributeLookupConnector] = LdapConnector
    _ldap_inspect: type[InspectConnector] = LdapConnector
    _ldap_members: type[MembersConnector] = LdapConnector
    _ldap_probe: type[ProbeConnector] = LdapConnector
    _ldap_breakers: type[BreakerConnector] = LdapConnector
    _ad_password: type[PasswordConnector] = AdConnector
    _ad_lookup: type[LookupConnector] = AdConnector
    _ad_find_by: type[AttributeLookupConnector] = AdConnector
    _ad_inspect: type[InspectConnector] = AdConnector
    _ad_members: type[MembersConnector] = AdConnector
    _ad_probe: type[ProbeConnector] = AdConnector
    _ad_breakers: type[BreakerConnector] = AdConnector

    # ---- upstream identity providers (the broker as SAML SP / OIDC RP) ----
    _saml_sp: type[SAMLConnector] = SamlServiceProvider
    _oidc_rp: type[CallbackConnector] = OidcRelyingParty

    # ---- how an LDAP directory answers "which groups" (connectors/ldap_groups.py) ----
    _member_of: type[GroupResolver] = MemberOf
    _group_search: type[GroupResolver] = GroupSearch
    _in_chain: type[GroupResolver] = InChain
    _token_groups: type[GroupResolver] = TokenGroupsResolver

    # ---- shared state (state/base.py) ----
    _memory_state: type[StateStore] = MemoryState
    _redis_state: type[StateStore] = RedisState
    _database_state: type[StateStore] = DatabaseState

    # ---- the mapping and the audit log (mapping/store.py, flow.py) over the database ----
    _sql_mapping: type[MappingStore] = SqlMappingStore
    _sql_decisions: type[DecisionLog] = SqlMappingStore
    _sql_requests: type[RequestStore] = SqlRequestStore  # just-in-time access (jit/__init__.py)
    _sql_webauthn: type[WebAuthnCredentialStore] = SqlWebAuthnStore  # passkeys (mfa/credentials.py)

    # ---- signing (minting/__init__.py) and AWS (aws/__init__.py) ----
    _saml_idp: type[SamlIssuer] = SamlIdp
    _oidc_issuer: type[TokenIssuer] = OidcIssuer
    _sts: type[CredentialsIssuer] = StsGateway
    _aws_console: type[ConsoleSignin] = FederationSignin
    _sandbox_console: type[ConsoleSignin] = SandboxConsole

    # ---- what the credential formats render (awsbroker/delivery.py): the server's and the client's ----
    _issued_credentials: type[Credentials] = TemporaryCredentials
    _parsed_credentials: type[Credentials] = ParsedCredentials

    # ---- audit forwarding's destinations (audit_forward/forwarder.py) ----
    _syslog_sender: type[Sender] = SyslogSender
    _webhook_sender: type[Sender] = WebhookSender

    # ---- notifications (notify/__init__.py): the outbox of webhook notifications ----
    _outbox_notifier: type[Notifier] = OutboxNotifier

    # ---- second factors (mfa/store.py) ----
    _sql_factors: type[FactorStore] = SqlFactorStore
