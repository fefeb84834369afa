"""Who is calling: each request's principal, and OAuth 2.1 for HTTP.

A principal is whoever a request acts for:

- with `MCP_AUTH_ISSUER`, the access token's issuer and subject: HTTP requires tokens
  from that OAuth 2.1 / OpenID issuer (`IssuerTokens`), and the server publishes its
  protected resource metadata (RFC 9728, `OAuthResource`) so that clients find where
  to sign in;
- with `MCP_HTTP_TOKEN`, the one user of that static token;
- otherwise the local user (stdio, or HTTP on loopback without a token).

What a user keeps (a council debate), the state of their modern calls and their
budget of the server's model are theirs by it; logs and traces carry only its
`digest`, never a token.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx2
import jwt
from fastmcp.server.auth import AccessToken, RemoteAuthProvider, TokenVerifier
from fastmcp.server.dependencies import get_access_token
from jwt import PyJWK
from jwt.exceptions import PyJWTError
from starlette.routing import Route

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """Whoever a request acts for: an issuer, and a subject the issuer vouches for."""

    issuer: str
    subject: str

    @property
    def key(self) -> str:
        """What keys the principal's own things (stored, never shown)."""
        return f"{self.issuer} {self.subject}"

    @property
    def digest(self) -> str:
        """A hash of the principal, for logs and traces: it names nobody.

        >>> LOCAL_USER.digest
        '6edbc1f9c9a9b7e5'
        """
        return hashlib.sha256(self.key.encode()).hexdigest()[:16]


LOCAL_USER = Principal("local", "local")
"""The user of a server nothing authenticates: stdio, or HTTP on loopback."""
STATIC_TOKEN = Principal("static-token", "MCP_HTTP_TOKEN")
"""The one user of the static bearer token."""


principal_in_logs: contextvars.ContextVar[str] = contextvars.ContextVar(
    "principal_in_logs", default="-"
)
"""The digest of the principal whose tool call runs here (set by the server)."""


class PrincipalInLogs(logging.Filter):
    """Gives each record the digest of the principal it was logged for, as
    `%(principal)s` (`-` outside a tool call)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.principal = principal_in_logs.get()
        return True


def current_principal() -> Principal:
    """The principal of the request being served."""
    token = get_access_token()
    if token is None:
        return LOCAL_USER
    issuer = (token.claims or {}).get("iss")
    if isinstance(issuer, str) and token.subject:
        return Principal(issuer, token.subject)
    return STATIC_TOKEN


ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
    | {"EdDSA"}
)
"""Signatures a public key checks. Never `none`, never HMAC: a JWKS is public, so an
HMAC secret taken from it would be everybody's."""
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class IssuerTokens(TokenVerifier):
    """Access tokens (JWTs) from one issuer, for one audience.

    The issuer's JWKS is found by discovery (its OpenID configuration, else its RFC
    8414 metadata, whose `issuer` must be the configured one), on first use. A token
    signed with a key the JWKS lacks makes it fetched again, once for everybody
    waiting, and at most every `refresh_every` seconds, so a stream of forged key ids
    costs the issuer one request now and then. A token must carry `iss` (the issuer),
    `aud` holding `audience` (RFC 8707: the server's resource URL), `exp`, and a
    `sub`; `exp`, `nbf` and `iat` get `leeway` seconds of clock skew.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        required_scopes: list[str] | None = None,
        leeway: float = 30.0,
        refresh_every: float = 10.0,
        keys_for: float = 3600.0,
    ) -> None:
        super().__init__(required_scopes=required_scopes)
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.refresh_every = refresh_every
        self.keys_for = keys_for
        self._jwks_uri: str | None = None
        self._keys: dict[str | None, tuple[PyJWK, str | None]] = {}
        self._fetched_at = float("-inf")
        self._tried_at = float("-inf")
        self._missing: set[str | None] = set()
        self._fetching = anyio.Lock()

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            return None
        algorithm, key_id = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            logger.info("token refused: it is signed with %r", algorithm)
            return None
        found = await self._key(key_id)
        if found is None:
            logger.info("token refused: key %r is not in the issuer's JWKS", key_id)
            return None
        key, key_algorithm = found
        if key.key_type != _KEY_TYPE[algorithm[:2]] or key_algorithm not in {
            None,
            algorithm,
        }:
            logger.info("token refused: %r does not fit key %r", algorithm, key_id)
            return None
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except PyJWTError as error:
            logger.info("token refused: %s", error)
            return None
        scope = claims.get("scope", claims.get("scp", []))
        return AccessToken(
            token=token,
            client_id=str(
                claims.get("client_id") or claims.get("azp") or claims["sub"]
            ),
            scopes=scope.split() if isinstance(scope, str) else [str(s) for s in scope],
            # The SDK refuses `expires_at` in the past without leeway: carry it here.
            expires_at=int(claims["exp"] + self.leeway),
            subject=str(claims["sub"]),
            resource=self.audience,
            claims=claims,
        )

    async def _key(self, key_id: str | None) -> tuple[PyJWK, str | None] | None:
        if self._fresh() and (found := self._lookup(key_id)) is not None:
            return found
        async with self._fetching:  # one fetch for every token waiting on it
            if self._fresh() and (found := self._lookup(key_id)) is not None:
                return found
            now = time.monotonic()
            fetched = False
            may_fetch = now - self._tried_at >= self.refresh_every
            if may_fetch and (not self._fresh() or key_id not in self._missing):
                self._tried_at = now
                try:
                    await self._fetch()
                    fetched = True
                except (httpx2.HTTPError, ValueError) as error:
                    logger.warning("the issuer's JWKS could not be fetched: %s", error)
            found = self._lookup(key_id)
            if found is None and fetched:
                self._missing.add(key_id)  # not in the JWKS as it is now
            return found

    def _fresh(self) -> bool:
        return time.monotonic() - self._fetched_at < self.keys_for

    def _lookup(self, key_id: str | None) -> tuple[PyJWK, str | None] | None:
        if key_id is None:  # only unambiguous with a single key
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(key_id)

    async def _fetch(self) -> None:
        async with httpx2.AsyncClient(timeout=5) as http:
            if self._jwks_uri is None:
                self._jwks_uri = await self._discover(http)
            response = await http.get(self._jwks_uri)
            response.raise_for_status()
            published = response.json().get("keys", [])
        keys: dict[str | None, tuple[PyJWK, str | None]] = {}
        for jwk in published:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            if jwk.get("kty") == "oct":  # a shared secret has no place in a JWKS
                continue
            try:
                keys[jwk.get("kid")] = (PyJWK(jwk), jwk.get("alg"))
            except PyJWTError as error:  # a key type this server cannot use
                logger.debug("JWK %r left out: %s", jwk.get("kid"), error)
        self._keys, self._fetched_at, self._missing = keys, time.monotonic(), set()
        logger.info("the issuer's JWKS has %d key(s)", len(keys))

    async def _discover(self, http: httpx2.AsyncClient) -> str:
        problems = []
        for url in _metadata_urls(self.issuer):
            try:
                response = await http.get(url)
                metadata = response.json() if response.status_code == 200 else None
            except (httpx2.HTTPError, ValueError) as error:
                problems.append(f"{url}: {error}")
                continue
            if metadata is None:
                problems.append(f"{url}: HTTP {response.status_code}")
                continue
            if metadata.get("issuer") != self.issuer:
                raise ValueError(f"{url} names the issuer {metadata.get('issuer')!r}")
            jwks_uri = metadata.get("jwks_uri")
            if isinstance(jwks_uri, str):
                return jwks_uri
            raise ValueError(f"{url} has no jwks_uri")
        raise ValueError("the issuer's metadata was not found: " + "; ".join(problems))


def _metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be: OpenID Discovery, then RFC 8414.

    >>> _metadata_urls("https://id.example/tenant")[1]
    'https://id.example/.well-known/oauth-authorization-server/tenant'
    """
    parts = urlsplit(issuer.rstrip("/"))
    origin = f"{parts.scheme}://{parts.netloc}"
    return [
        f"{issuer.rstrip('/')}/.well-known/openid-configuration",
        f"{origin}/.well-known/oauth-authorization-server{parts.path}",
    ]


class OAuthResource(RemoteAuthProvider):
    """This server as an OAuth 2.1 protected resource: tokens from `verifier`'s
    issuer, and its metadata (RFC 9728) at both `/.well-known/oauth-protected-resource`
    and the path form for the MCP endpoint; every 401 names it
    (`WWW-Authenticate: Bearer resource_metadata="..."`)."""

    def __init__(self, verifier: IssuerTokens, mcp_path: str = "/mcp") -> None:
        resource = verifier.audience
        super().__init__(
            token_verifier=verifier,
            # Plain strings: the issuer is compared as written, trailing slash and all.
            authorization_servers=[verifier.issuer],  # type: ignore[list-item]
            base_url=resource.removesuffix(mcp_path),
            scopes_supported=verifier.required_scopes or None,
        )

    def get_routes(self, mcp_path: str | None = None) -> list[Route]:
        routes = super().get_routes(mcp_path)
        root = "/.well-known/oauth-protected-resource"
        return routes + [
            Route(root, endpoint=route.endpoint, methods=route.methods)
            for route in routes
            if route.path.startswith(f"{root}/")
        ]
