"""The broker as an OpenID Connect relying party (authorization code flow), on Authlib and joserfc.

One ``OidcRelyingParty`` per configured provider (``upstream: [{type: oidc, ...}]``):

- discovery from ``<issuer>/.well-known/openid-configuration`` (its ``issuer`` must be ours,
  exactly), cached for ``discovery_ttl_seconds``;
- ``login_url``: code flow with PKCE S256 always, a fresh ``state`` and ``nonce``; state, nonce,
  verifier and the next path are kept in shared state (single use, TTL, bound to the browser),
  under this provider's name — each provider has its own redirect URI, so a response meant for
  one provider is never accepted by another (mix-up);
- ``handle_callback``: the state (consumed), the RFC 9207 ``iss`` parameter when the provider
  sends it, the code exchanged with the verifier (Authlib's OAuth2Client), then the ID token:
  an asymmetric algorithm from the allow-list; no ``jku``/``jwk``/``x5u``/``x5c`` header; a key
  only from the provider's JWKS, chosen by ``kid`` (an unknown kid fetches the JWKS again, at most
  every ``jwks_refresh_min_seconds``: key rotation); ``iss``, ``aud`` (and ``azp``), ``exp``,
  ``iat``, ``nbf`` against the broker's clock with ``clock_skew_seconds``; the ``nonce``.

httpx and Authlib exceptions become ``UpstreamUnavailable`` / ``UpstreamRejected`` here.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import httpx
from authlib.integrations.base_client.errors import OAuthError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

from broker.connectors.base import Connector, SignIn
from broker.connectors.config import OidcUpstreamConfig, loopback_host
from broker.connectors.upstream import (
    MAX_ATTRIBUTES,
    MAX_VALUES,
    Fetcher,
    PendingRequests,
    claim,
    clean_text,
    enrich,
    group_list,
)
from broker.domain import Identity
from broker.errors import SsoRequestInvalid, UpstreamDenied, UpstreamRejected, UpstreamUnavailable
from broker.logs import get_logger
from broker.mfa import stepped_up
from broker.redirects import safe_next
from broker.state.base import StateStore

with warnings.catch_warnings():
    # Authlib 1.9 warns that it falls back to the httpx package (the broker's HTTP client) when
    # the newer httpx2 is not installed; the fallback is what we want.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

log = get_logger("broker.upstream.oidc")

MAX_DOCUMENT = 512 * 1024
MAX_TOKEN = 64 * 1024
# Header parameters that name a key to trust: refused outright (keys come only from the JWKS).
_KEY_HEADERS = ("jku", "jwk", "x5u", "x5c")
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
# Claims that describe the token rather than the person: never kept as identity attributes.
_TOKEN_CLAIMS = {"iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "auth_time", "sid", "jti",
                 "acr", "amr", "sub", "typ", "s_hash", "uti", "rh", "ver", "tid", "oid"}


def _b64json(segment: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError):
        return None


def _endpoint(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = httpx.URL(url)
    return parts.scheme == "https" or (parts.scheme == "http" and loopback_host(parts.host))


class OidcRelyingParty:
    kind: ClassVar[Literal["oidc"]] = "oidc"

    def __init__(
        self,
        config: OidcUpstreamConfig,
        *,
        public_url: str,
        state: StateStore,
        directory: Connector | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = config.name
        self.display_name = config.display_name or config.name
        self.issuer = config.issuer
        self.redirect_uri = f"{public_url.rstrip('/')}/sso/{config.name}/oidc/callback"
        self._config = config
        self._state = state
        self._directory = directory
        self._clock = clock
        self._pending = PendingRequests(state, f"sso:oidc:{config.name}:state")
        self._fetcher = Fetcher(timeout=config.timeout, transport=transport)
        secret = config.client_secret.get_secret_value() if config.client_secret is not None else None
        # One client for the process; only return values are used (never its .token attribute).
        self._oauth = OAuth2Client(
            client_id=config.client_id,
            client_secret=secret,
            token_endpoint_auth_method=config.token_endpoint_auth_method,
            scope=" ".join(config.scopes),
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=config.timeout,
            transport=transport,
            follow_redirects=False,
        )
        self._lock = threading.RLock()
        self._discovery: dict[str, Any] | None = None
        self._discovery_at = 0.0
        self._keys: dict[str, dict[str, Any]] = {}
        self._keys_at: float | None = None
        self.jwks_fetches = 0
        """How many times the JWKS was fetched (operators and tests: rotation, rate limit)."""

    # ---- provider documents ----

    def discovery(self, now: float | None = None) -> dict[str, Any]:
        now = self._clock() if now is None else now
        doc = self._discovery
        if doc is not None and now - self._discovery_at < self._config.discovery_ttl_seconds:
            return doc
        with self._lock:
            if self._discovery is not None and now - self._discovery_at < self._config.discovery_ttl_seconds:
                return self._discovery
            url = f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
            doc = self._fetcher.get_json(url, max_bytes=MAX_DOCUMENT, what="discovery document", idp=self.name)
            if doc.get("issuer") != self.issuer:
                log.warning("oidc_discovery_issuer_mismatch", idp=self.name)
                raise UpstreamUnavailable("the provider's discovery document names another issuer")
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not _endpoint(doc.get(field)):
                    raise UpstreamUnavailable(f"the provider's discovery document has no usable {field}")
            if self._config.userinfo and not _endpoint(doc.get("userinfo_endpoint")):
                raise UpstreamUnavailable("the provider's discovery document has no usable userinfo_endpoint")
            self._discovery, self._discovery_at = doc, now
            return doc

    def _load_keys(self, now: float) -> None:
        doc = self.discovery(now)
        jwks = self._fetcher.get_json(doc["jwks_uri"], max_bytes=MAX_DOCUMENT, what="JWKS", idp=self.name)
        self.jwks_fetches += 1
        keys: dict[str, dict[str, Any]] = {}
        for i, jwk in enumerate(jwks.get("keys") or []):
            if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC", "OKP") or jwk.get("use", "sig") != "sig":
                continue
            if any(k in jwk for k in ("d", "p", "q", "k")):
                continue  # a private or symmetric key has no business in a JWKS
            kid = jwk.get("kid")
            keys[kid if isinstance(kid, str) else f"#{i}"] = jwk
        self._keys, self._keys_at = keys, now
        log.info("oidc_jwks_loaded", idp=self.name, keys=len(keys))

    def _key(self, kid: str | None, alg: str, now: float) -> Key:
        """The JWKS key for ``kid`` and ``alg`` (RSA, EC or OKP: ``_load_keys`` keeps no other);
        refetch on an unknown kid, at most every N seconds."""
        with self._lock:
            stale = self._keys_at is None or now - self._keys_at >= self._config.discovery_ttl_seconds
        if stale:
            with self._lock:
                self._load_keys(now)
        jwk = self._pick(kid, alg)
        if jwk is None:
            with self._lock:
                assert self._keys_at is not None
                if now - self._keys_at >= self._config.jwks_refresh_min_seconds:
                    self._load_keys(now)  # a key rotation at the provider
                    jwk = self._pick(kid, alg)
        if jwk is None:
            raise UpstreamRejected(reason="unknown_kid")
        try:
            return JWKRegistry.import_key(jwk)
        except (JoseError, ValueError, TypeError):
            raise UpstreamRejected(reason="unusable_key") from None

    def _pick(self, kid: str | None, alg: str) -> dict[str, Any] | None:
        kty = _KEY_TYPES.get(alg[:2])

        def fits(jwk: dict[str, Any]) -> bool:
            if jwk.get("kty") != kty or jwk.get("alg", alg) != alg:
                return False
            return alg not in _CURVES or jwk.get("crv") == _CURVES[alg]

        if kid is not None:
            jwk = self._keys.get(kid)
            return jwk if jwk is not None and fits(jwk) else None
        candidates = [j for j in self._keys.values() if fits(j)]
        return candidates[0] if len(candidates) == 1 else None

    # ---- UpstreamConnector / CallbackConnector ----

    def login_url(self, *, next_url: str, binding: str, now: float | None = None) -> str:
        doc = self.discovery(now)
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        record = {"nonce": nonce, "verifier": verifier, "next": safe_next(next_url) or "/", "binding": binding}
        self._pending.put(state, record, ttl=self._config.request_ttl_seconds)
        url, _ = self._oauth.create_authorization_url(
            doc["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
        )
        return url

    def handle_callback(self, params: Mapping[str, str], *, binding: str | None, now: float | None = None) -> SignIn:
        now = self._clock() if now is None else now
        state = params.get("state")
        if not state:
            raise SsoRequestInvalid(reason="missing_state")
        pending = self._pending.take(state, binding=binding)
        doc = self.discovery(now)
        iss = params.get("iss")
        announced = doc.get("authorization_response_iss_parameter_supported") is True
        if (iss is not None or announced) and iss != self.issuer:
            raise UpstreamRejected(reason="issuer_mismatch")  # RFC 9207: an answer from another provider
        if params.get("error"):
            error = clean_text(params.get("error"), limit=64) or "error"
            log.info("oidc_provider_error", idp=self.name, error=error)
            raise UpstreamDenied(reason=f"provider_error:{error}")
        code = params.get("code")
        if not code or len(code) > 4096:
            raise UpstreamRejected(reason="missing_code")
        tokens = self._exchange(doc["token_endpoint"], code, pending["verifier"])
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamRejected(reason="no_id_token")
        claims = self.validate_id_token(id_token, nonce=pending["nonce"], now=now)
        token_claims = claims
        if self._config.userinfo:
            claims = self._with_userinfo(doc["userinfo_endpoint"], tokens.get("access_token"), claims)
        identity = self._identity(claims)
        if self._config.enrich_from_directory is not None:
            identity = enrich(identity, self._config.enrich_from_directory, self._directory, subject=claims["sub"], idp=self.name)
        auth_time = token_claims.get("auth_time")
        proved = float(auth_time if isinstance(auth_time, int | float) and not isinstance(auth_time, bool)
                       else token_claims["iat"])
        for method in self._mfa_methods(token_claims):  # the signed ID token's own amr / acr only
            identity = stepped_up(identity, method=method, at=min(proved, now))
        return SignIn(identity, safe_next(pending.get("next")) or "/")

    def _mfa_methods(self, claims: dict[str, Any]) -> list[str]:
        """The ``amr`` values (and the ``acr``) the config counts as a second factor."""
        mfa = self._config.mfa
        if mfa is None:
            return []
        amr = claims.get("amr")
        found = [a for a in amr if isinstance(a, str) and a in mfa.amr] if isinstance(amr, list) else []
        acr = claims.get("acr")
        if isinstance(acr, str) and acr in mfa.acr:
            found.append(acr)
        return found

    def _exchange(self, token_endpoint: str, code: str, verifier: str) -> dict[str, Any]:
        try:
            token = self._oauth.fetch_token(
                token_endpoint,
                grant_type="authorization_code",
                code=code,
                redirect_uri=self.redirect_uri,
                code_verifier=verifier,
            )
        except OAuthError as exc:
            error = clean_text(getattr(exc, "error", None), limit=64) or "error"
            log.info("oidc_code_refused", idp=self.name, error=error)
            raise UpstreamRejected(reason=f"code_refused:{error}") from None
        except httpx.HTTPError as exc:
            log.warning("upstream_unreachable", idp=self.name, what="token endpoint", error_type=type(exc).__name__)
            raise UpstreamUnavailable("the provider's token endpoint cannot be reached") from None
        except ValueError:
            raise UpstreamRejected(reason="bad_token_response") from None
        return dict(token)

    def _with_userinfo(self, url: str, access_token: Any, claims: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(access_token, str):
            raise UpstreamRejected(reason="no_access_token")
        try:
            r = self._fetcher.client.get(url, headers={"Authorization": f"Bearer {access_token}"})
        except httpx.HTTPError:
            raise UpstreamUnavailable("the provider's userinfo endpoint cannot be reached") from None
        try:
            info = r.json() if r.status_code == 200 and len(r.content) <= MAX_DOCUMENT else None
        except ValueError:
            info = None
        if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
            raise UpstreamRejected(reason="bad_userinfo")
        return {**info, **claims}  # the signed ID token wins where both say something

    # ---- the ID token ----

    def validate_id_token(self, token: str, *, nonce: str, now: float) -> dict[str, Any]:
        """The ID token's claims, or UpstreamRejected with the reason (for the audit log)."""
        cfg = self._config
        if len(token) > MAX_TOKEN:
            raise UpstreamRejected(reason="token_too_large")
        parts = token.split(".")
        if len(parts) != 3:
            raise UpstreamRejected(reason="not_a_signed_jwt")  # a JWE, or not a JWT at all
        header = _b64json(parts[0])
        if not isinstance(header, dict):
            raise UpstreamRejected(reason="malformed_token")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in cfg.algorithms:
            raise UpstreamRejected(reason="algorithm_not_allowed")  # none, HS256 (a public key as an HMAC secret), ...
        for name in _KEY_HEADERS:
            if name in header:
                raise UpstreamRejected(reason=f"{name}_header_refused")
        if "crit" in header:
            raise UpstreamRejected(reason="crit_header_refused")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise UpstreamRejected(reason="malformed_token")
        key = self._key(kid, alg, now)
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except JoseError as exc:
            reason = "invalid_signature" if type(exc).__name__ == "BadSignatureError" else "malformed_token"
            raise UpstreamRejected(reason=reason) from None
        skew = cfg.clock_skew_seconds
        if claims.get("iss") != self.issuer:
            raise UpstreamRejected(reason="wrong_issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if cfg.client_id not in audiences:
            raise UpstreamRejected(reason="wrong_audience")
        azp = claims.get("azp")
        if (len(audiences) > 1 and azp is None) or (azp is not None and azp != cfg.client_id):
            raise UpstreamRejected(reason="wrong_azp")
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool) or not isinstance(iat, (int, float)):
            raise UpstreamRejected(reason="missing_time_claims")
        if exp <= now - skew:
            raise UpstreamRejected(reason="expired")
        if iat > now + skew or (isinstance(nbf, (int, float)) and nbf > now + skew):
            raise UpstreamRejected(reason="not_yet_valid")
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str):
            raise UpstreamRejected(reason="nonce_missing")
        if not hmac.compare_digest(token_nonce.encode(), nonce.encode()):
            raise UpstreamRejected(reason="nonce_mismatch")
        sub = claims.get("sub")
        if clean_text(sub, limit=255) is None:
            raise UpstreamRejected(reason="no_subject")
        return claims

    def _identity(self, claims: dict[str, Any]) -> Identity:
        cfg = self._config
        for path, wanted in cfg.required_claims.items():
            have = claim(claims, path)
            allowed = [wanted] if isinstance(wanted, str) else wanted
            if not isinstance(have, str) or have not in allowed:
                raise UpstreamRejected(reason=f"required_claim:{path}")
        cmap = cfg.claims
        username = clean_text(claim(claims, cmap.username))
        if username is None:
            raise UpstreamRejected(reason="no_username")
        email = clean_text(claim(claims, cmap.email)) if cmap.email is not None else None
        uses_email = "email" in (cmap.username, cmap.email) or (
            cfg.enrich_from_directory is not None and cfg.enrich_from_directory.value == "email"
        )
        if uses_email and claims.get("email_verified") in (False, "false"):
            raise UpstreamRejected(reason="email_not_verified")
        groups = group_list(claim(claims, cmap.groups)) if cmap.groups is not None else ()
        group_claim = cmap.groups if isinstance(cmap.groups, str) else None
        kept: list[tuple[str, tuple[str, ...]]] = []
        for name, value in list(claims.items())[: MAX_ATTRIBUTES * 2]:
            if name in _TOKEN_CLAIMS or name == group_claim:
                continue
            values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            texts = tuple(v for v in (clean_text(x) for x in values[:MAX_VALUES]) if v is not None)
            if texts and len(kept) < MAX_ATTRIBUTES:
                kept.append((name, texts))
        return Identity(
            id=f"{self.name}:{claims['sub']}",
            username=username,
            display_name=(clean_text(claim(claims, cmap.display_name)) if cmap.display_name else None) or username,
            email=email or "",
            groups=groups,
            attributes=tuple(kept),
            source=self.name,
        )

    def close(self) -> None:
        self._fetcher.close()
        self._oauth.close()

    def __repr__(self) -> str:
        return f"OidcRelyingParty(name={self.name!r}, issuer={self.issuer!r})"
