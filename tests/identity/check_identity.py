"""`nox -s identity`: a generated server as an OAuth 2.1 resource server, against a real
OpenID provider and the TypeScript SDK's own OAuth client.

`oidc-provider` (pinned in package-lock.json, provider.mjs) runs on loopback with
dynamic client registration, PKCE and resource indicators, signing with a key made
here. The summarizer reference server serves HTTP with `MCP_AUTH_ISSUER` set to it.
Then, each check a line:

1. the server publishes its protected resource metadata at both addresses, and
   answers 401 naming it, while /health and /ready stay open;
2. the TypeScript SDK's OAuth client signs in from scratch on both eras (discovery
   from the 401, registration, authorization code with PKCE, the consent forms filled
   in headlessly) and calls the tool, answering its sampling request;
3. the provider's own tokens are taken; forged ones are refused with the challenge: a
   wrong audience, a wrong issuer, expired, not yet valid, no subject, `alg: none`,
   HMAC with the public key, a key the issuer never published, a missing scope;
4. a modern call's state started by alice is refused to bob, with a clear message;
5. with one session allowed, bob's session ends alice's (with alice's own token, as
   only she may), and the project's smoke check passes with a provider token;
6. a key the issuer starts signing with is fetched when a token names it.

    python tests/identity/check_identity.py NODE_FOLDER SERVER_COMMAND SMOKE_CHECK
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import anyio
import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from jwt.algorithms import RSAAlgorithm
from mcp.types import InputRequiredResult, SamplingCapability

SCOPE = "mcp:tools"
SUMMARY = "The council will repave Elm Street in May."
WITHIN = 30.0


class Failed(Exception):
    """A check failed; the message says which, in one line."""


def main(node_folder: Path, server_command: str, smoke_check: Path) -> int:
    started = time.monotonic()
    results: list[str] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"identity-{secrets.token_hex(4)}"
        jwks = Path(scratch) / "keys.json"
        jwks.write_text(json.dumps({"keys": [private_jwk(key, kid)]}))
        issuer = start_provider(stack, node_folder, jwks)
        port = free_port()
        resource = f"http://127.0.0.1:{port}/mcp"
        start_server(stack, server_command, port, issuer, resource)
        forge = Forger(issuer, resource, key, kid)
        checks: list[tuple[str, Callable[[], str]]] = [
            ("metadata and challenge", lambda: metadata(resource, issuer)),
            ("TypeScript sign-in, legacy", lambda: sign_in(node_folder, resource, "legacy")),
            ("TypeScript sign-in, modern", lambda: sign_in(node_folder, resource, "modern")),
            ("the provider's tokens, and forged ones", lambda: tokens(forge, resource)),
            ("state of one user, refused to another", lambda: state(forge, resource)),
            ("sessions ended by their owners", lambda: sessions(forge, resource)),
            ("the smoke check, with a provider token", lambda: smoke(smoke_check, forge, resource)),
            ("a new signing key, fetched when named", lambda: rotation(issuer, forge, resource)),
        ]  # fmt: skip
        for name, check in checks:
            try:
                results.append(f"  ok  {name}: {check()}")
            except (Failed, AssertionError, httpx.HTTPError) as failure:
                print(*results, sep="\n")
                print(f"identity: FAILED: {name}: {failure}", file=sys.stderr)
                return 1
    print(*results, sep="\n")
    print(f"identity: ok in {time.monotonic() - started:.1f} s")
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def private_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def start_provider(stack: ExitStack, node_folder: Path, jwks: Path) -> str:
    process = subprocess.Popen(
        ["node", "provider.mjs"],
        cwd=node_folder,
        env={**os.environ, "PROVIDER_JWKS_FILE": str(jwks)},
        stdout=subprocess.PIPE,
        text=True,
    )
    stack.callback(stop, process)
    assert process.stdout is not None
    ready = process.stdout.readline()
    if not ready.startswith("READY "):
        raise SystemExit(f"identity: FAILED: the provider did not start: {ready!r}")
    return str(json.loads(ready.removeprefix("READY "))["issuer"])


def start_server(
    stack: ExitStack, command: str, port: int, issuer: str, resource: str
) -> None:
    environment = {
        **os.environ,
        "MCP_TRANSPORT": "http",
        "MCP_PORT": str(port),
        "MCP_AUTH_ISSUER": issuer,
        "MCP_AUTH_AUDIENCE": resource,
        "MCP_AUTH_REQUIRED_SCOPES": SCOPE,
        "MCP_HTTP_MAX_SESSIONS": "1",
        "MCP_LOG_LEVEL": os.environ.get("MCP_LOG_LEVEL", "WARNING"),
    }
    process = subprocess.Popen([command], env=environment)
    stack.callback(stop, process)
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("identity: FAILED: the server never answered /health")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


class Forger:
    """Tokens: the provider's, and ones made here with its own key or another."""

    def __init__(self, issuer: str, resource: str, key: rsa.RSAPrivateKey, kid: str):
        self.issuer, self.resource, self.key, self.kid = issuer, resource, key, kid

    def provider_token(
        self, resource: str | None = None, client: str = "test-m2m"
    ) -> str:
        """A real access token (client credentials) for `resource`."""
        answer = httpx.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client,
                "client_secret": f"{client}-secret",
                "resource": resource or self.resource,
                "scope": SCOPE,
            },
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def claims(self, **changes: object) -> dict:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": "alice", "aud": self.resource, "iat": now,
            "exp": now + 300, "scope": SCOPE, "client_id": "forged",
        }  # fmt: skip
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def signed(self, **changes: object) -> str:
        """Signed with the provider's own key: only `changes` differ from a real one."""
        return jwt.encode(
            self.claims(**changes), self.key, "RS256", headers={"kid": self.kid}
        )


def status_of(resource: str, token: str) -> httpx.Response:
    """A 2026-07-28 `server/discover` with `token`."""
    body = {
        "jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }},
    }  # fmt: skip
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "server/discover",
    }
    return httpx.post(resource, json=body, headers=headers)


def metadata(resource: str, issuer: str) -> str:
    base = resource.removesuffix("/mcp")
    for path in (
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ):
        document = httpx.get(base + path).json()
        assert document["resource"] == resource, document
        assert document["authorization_servers"] == [issuer], document
    refused = httpx.post(resource, json={})
    assert refused.status_code == 401, refused.status_code
    challenge = refused.headers["www-authenticate"]
    assert (
        f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
        in challenge
    )
    for path in ("/health", "/ready"):
        assert httpx.get(base + path).status_code == 200, path
    return "both addresses; 401 names them; /health and /ready open"


def sign_in(node_folder: Path, resource: str, era: str) -> str:
    ran = subprocess.run(
        ["node", "signin.mjs", resource, "--user", "alice", "--era", era],
        cwd=node_folder, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if ran.returncode != 0:
        raise Failed(ran.stderr.strip().splitlines()[-1] if ran.stderr else "no output")
    out = json.loads(ran.stdout)
    assert out["unauthorized"], "the first connection was not asked to sign in"
    assert out["registered"], "no client was registered"
    assert out["claims"]["aud"] == resource, out["claims"]
    assert out["claims"]["sub"] == "alice", out["claims"]
    assert (out["result"], out["isError"]) == (SUMMARY, False), out
    steps = len(out["browsed"])
    return f"401, registered, {steps} browser steps, token for {resource}, tool called"


def tokens(forge: Forger, resource: str) -> str:
    assert status_of(resource, forge.provider_token()).status_code == 200
    assert (
        status_of(resource, forge.signed(exp=int(time.time()) - 10)).status_code == 200
    )
    public = forge.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = b64(json.dumps(forge.claims()).encode())
    none = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{claims}."
    # The key confusion attack: the public key (which anybody may fetch) as an HMAC
    # secret, by hand, since PyJWT refuses to sign so.
    hmac_header = b64(json.dumps({"alg": "HS256", "kid": forge.kid}).encode())
    mac = hmac.new(public, f"{hmac_header}.{claims}".encode(), hashlib.sha256).digest()
    forged = {
        "another resource's token": forge.provider_token("http://127.0.0.1:9/mcp"),
        "another issuer": forge.signed(iss="http://127.0.0.1:9"),
        "expired": forge.signed(exp=int(time.time()) - 120),
        "not yet valid": forge.signed(nbf=int(time.time()) + 120),
        "no subject": forge.signed(sub=None),
        "alg none": none,
        "HMAC with the public key": f"{hmac_header}.{claims}.{b64(mac)}",
        "a key never published": jwt.encode(
            forge.claims(), other, "RS256", headers={"kid": "never-published"}
        ),
    }
    for what, token in forged.items():
        answer = status_of(resource, token)
        assert answer.status_code == 401, f"{what}: HTTP {answer.status_code}"
        assert "resource_metadata=" in answer.headers["www-authenticate"], what
    unscoped = status_of(resource, forge.signed(scope="openid"))
    assert unscoped.status_code == 403, f"no {SCOPE}: HTTP {unscoped.status_code}"
    assert "insufficient_scope" in unscoped.headers["www-authenticate"]
    return f"2 taken; {len(forged)} forged refused 401; a missing scope 403"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client(resource: str, token: str) -> Client:
    return Client(
        StreamableHttpTransport(resource, headers={"Authorization": f"Bearer {token}"}),
        mode="2026-07-28",
        sampling_handler=lambda *_: SUMMARY,
        sampling_capabilities=SamplingCapability(),
    )


def state(forge: Forger, resource: str) -> str:
    async def run() -> str:
        arguments = {"text": "The council met on Tuesday."}
        async with client(resource, forge.signed(sub="alice")) as alice:
            started = await alice.session.call_tool(
                "summarize", arguments, allow_input_required=True
            )
        assert isinstance(started, InputRequiredResult), started
        answers = {key: {"role": "assistant", "model": "m", "content": {"type": "text", "text": SUMMARY}}
                   for key in started.input_requests}  # fmt: skip
        async with client(resource, forge.signed(sub="bob")) as bob:
            refused = await bob.session.call_tool(
                "summarize", arguments, request_state=started.request_state,
                input_responses=answers, allow_input_required=True,
            )  # fmt: skip
        assert refused.is_error, refused
        message = refused.content[0].text
        assert "issued to another user" in message, message
        return "bob reads: " + message.split(",")[0]

    return anyio.run(run)


def sessions(forge: Forger, resource: str) -> str:
    hello = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "identity", "version": "0"}},
    }  # fmt: skip
    accept = {"Accept": "application/json, text/event-stream"}
    alice = {**accept, "Authorization": f"Bearer {forge.signed(sub='alice')}"}
    bob = {**accept, "Authorization": f"Bearer {forge.signed(sub='bob')}"}
    first = httpx.post(resource, json=hello, headers=alice)
    session = first.headers["mcp-session-id"]
    httpx.post(resource, json=hello, headers=bob)  # one session at most: alice's ends
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    again = httpx.post(
        resource,
        json=ping,
        headers={
            **alice,
            "Mcp-Session-Id": session,
            "MCP-Protocol-Version": "2025-11-25",
        },
    )
    assert again.status_code == 404, (
        f"alice's session still answers: {again.status_code}"
    )
    return "alice's idle session ended (404) to make room for bob's"


def smoke(smoke_check: Path, forge: Forger, resource: str) -> str:
    ran = subprocess.run(
        [sys.executable, str(smoke_check), resource.removesuffix("/mcp")],
        env={**os.environ, "MCP_HTTP_TOKEN": forge.signed(sub="operator")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr.strip()
    return ran.stdout.strip()


def rotation(issuer: str, forge: Forger, resource: str) -> str:
    rotated = httpx.post(f"{issuer}/__test/rotate").json()["kid"]
    started = time.monotonic()
    while time.monotonic() - started < WITHIN:
        token = forge.provider_token()
        assert jwt.get_unverified_header(token)["kid"] == rotated
        if status_of(resource, token).status_code == 200:
            return f"a token of key {rotated} taken after {time.monotonic() - started:.1f} s"
        time.sleep(1)  # the server fetches the issuer's keys at most every 10 s
    raise Failed(f"a token of the new key {rotated} was refused for {WITHIN:g} s")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
