"""OAuth 2.0 for the awsbroker CLI: the device authorization grant (RFC 8628, ``device``) and the
bearer access / rotating refresh tokens it yields (RFC 6749 §6, RFC 6750, RFC 7009: ``tokens``).

Both keep their records in ``broker.state`` (Redis when configured) under the SHA-256 of each
secret: a dump of the state store gives no usable token or code. Errors are the classes of
``errors`` (RFC 6749 §5.2, RFC 8628 §3.5), each with its RFC ``error`` code and HTTP status;
broker.web.errors answers them, in one place, in the RFC 6749 §5.2 shape.
"""

from __future__ import annotations

import hashlib


def secret_hash(value: str) -> str:
    """The key a secret is stored under (hex SHA-256): the secret itself is never stored."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
