"""Connectors: who is this person? (static YAML users, OpenLDAP / generic LDAP, Active Directory;
upstream SAML IdPs and OpenID providers, with the broker as SP / RP: ``saml_sp``, ``oidc_rp``).

The interface is in ``base`` (a Protocol per capability, one frozen ``Identity``); the core
builds connectors only through ``registry.build_connector(config.directory)``. Nothing here
imports FastAPI, ``broker.web`` or ``broker.db``.
"""
