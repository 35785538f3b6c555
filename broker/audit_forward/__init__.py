"""Forwarding of the audit trail to syslog (RFC 5424 over TCP/TLS) and HTTPS webhooks.

Every audit row gets one outbox row per destination in its own transaction (``broker.db.outbox``);
the forwarder (``forwarder``) sends them in the background and deletes them once delivered, so
a receiver that is down delays events but never loses them. Modules: ``config`` (the
``audit.forward`` section), ``syslog`` and ``webhook`` (one destination each), ``forwarder``.
"""
