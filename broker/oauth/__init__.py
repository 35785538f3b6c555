"""OAuth 2.0 for the awsbroker CLI: the device authorization grant (RFC 8628, ``device``) and the
bearer access / rotating refresh tokens it yields (RFC 6749 §6, RFC 6750, RFC 7009: ``tokens``).

Both keep their records in ``broker.state`` (Redis when configured) under the SHA-256 of each
secret: a dump of the state store gives no usable token or code. Errors are authlib's
(``authlib.oauth2.rfc6749.errors``, ``authlib.oauth2.rfc8628``), so their ``error`` codes and
HTTP statuses are the RFCs' own; broker.web.device turns them into RFC 6749 §5.2 answers.
"""

from __future__ import annotations

import hashlib


def secret_hash(value: str) -> str:
    """The key a secret is stored under (hex SHA-256): the secret itself is never stored."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
