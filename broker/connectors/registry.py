"""``directory.type`` / ``upstream[].type`` → connector. The core builds connectors only through here.

Concrete modules are imported when their type is configured, so an install that uses the
static directory never imports ldap3's connection machinery, and the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from broker.connectors.base import Connector, UpstreamConnector
from broker.state.base import StateStore

if TYPE_CHECKING:
    from broker.connectors.config import (
        AdDirectoryConfig,
        LdapDirectoryConfig,
        OidcUpstreamConfig,
        SamlUpstreamConfig,
        StaticDirectoryConfig,
    )


def _static(config: StaticDirectoryConfig, state: StateStore | None) -> Connector:
    from broker.connectors.static import StaticConnector

    return StaticConnector(config)


def _ldap(config: LdapDirectoryConfig, state: StateStore | None) -> Connector:
    from broker.connectors.ldap import LdapConnector

    return LdapConnector(config, state=state)


def _ad(config: AdDirectoryConfig, state: StateStore | None) -> Connector:
    from broker.connectors.ad import AdConnector

    return AdConnector(config, state=state)


# by ``config.type``; each factory takes the config class of its type (the discriminated union's)
FACTORIES: dict[str, Callable[[Any, StateStore | None], Connector]] = {
    "static": _static,
    "ldap": _ldap,
    "ad": _ad,
}


def build_connector(
    config: StaticDirectoryConfig | LdapDirectoryConfig | AdDirectoryConfig, *, state: StateStore | None = None
) -> Connector:
    """The connector for one ``directory:`` section (``StaticDirectoryConfig``, ``LdapDirectoryConfig``, ...).

    ``state`` holds the group cache (``directory.cache``); without one, an in-process store is used.
    """
    if state is None:
        from broker.state.memory import MemoryState

        state = MemoryState()
    try:
        factory = FACTORIES[config.type]
    except KeyError:
        raise ValueError(f"unknown directory type {config.type!r}") from None
    return factory(config, state)


# ---- upstream identity providers (``upstream:``): the broker as SAML SP / OIDC RP ----


def _saml(config: SamlUpstreamConfig, **kw: Any) -> UpstreamConnector:
    from broker.connectors.saml_sp import SamlServiceProvider

    return SamlServiceProvider(config, **kw)


def _oidc(config: OidcUpstreamConfig, **kw: Any) -> UpstreamConnector:
    from broker.connectors.oidc_rp import OidcRelyingParty

    return OidcRelyingParty(config, **kw)


UPSTREAM_FACTORIES: dict[str, Callable[..., UpstreamConnector]] = {"saml": _saml, "oidc": _oidc}


def build_upstream(
    configs: Iterable[SamlUpstreamConfig | OidcUpstreamConfig], *, public_url: str, state: StateStore, directory: Connector | None = None
) -> dict[str, UpstreamConnector]:
    """One connector per ``upstream:`` entry, by name, in the configured order (the sign-in buttons').

    ``state`` holds pending sign-ins and the SAML assertion replay cache (Redis when configured,
    so replicas share them); ``directory`` serves ``enrich_from_directory``.
    """
    built: dict[str, UpstreamConnector] = {}
    for config in configs:
        built[config.name] = UPSTREAM_FACTORIES[config.type](
            config, public_url=public_url, state=state, directory=directory
        )
    return built
