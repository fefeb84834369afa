// A certified OpenID provider (oidc-provider, pinned in package-lock.json) on loopback, for
// `nox -s identity`: the authorization server a generated MCP server trusts.
//
//   PROVIDER_JWKS_FILE=keys.json node provider.mjs      (a free port; PORT=... to choose)
//
// Prints `READY {"issuer": "...", "port": N, "kid": "..."}` once it listens on 127.0.0.1.
// As an MCP client meets it: open dynamic client registration, PKCE (S256) for everyone,
// resource indicators (RFC 8707) that make a JWT access token for the MCP server's URL
// (`aud`), and the development login and consent forms, driven headlessly by the tests.
// For the token checks: two fixed users (alice, bob), pre-registered client_credentials
// clients, signing keys from PROVIDER_JWKS_FILE (so the checks can forge a token that
// differs from a real one in one claim), and POST /__test/rotate, a new signing key.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';

import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';
const wantedPort = Number(process.argv[2] ?? process.env.PORT ?? 0);
// Resource indicators this AS issues tokens for. Default: any http URL on a loopback host.
const RESOURCE_PREFIXES = (process.env.ALLOWED_RESOURCES ?? '').split(',').filter(Boolean);
const SCOPE = process.env.RESOURCE_SCOPE ?? 'mcp:tools';
const ACCESS_TOKEN_TTL = Number(process.env.ACCESS_TOKEN_TTL ?? 3600);

// Fixed test users: `alice` is the default, `bob` is "another principal".
const USERS = {
  alice: { sub: 'alice', name: 'Alice Test', email: 'alice@example.test' },
  bob: { sub: 'bob', name: 'Bob Test', email: 'bob@example.test' },
};

// Pre-registered confidential clients for headless tokens (client_credentials grant, sub = client_id).
const M2M_CLIENTS = [
  { client_id: 'test-m2m', client_secret: 'test-m2m-secret' },
  { client_id: 'test-m2m-2', client_secret: 'test-m2m-2-secret' },
];

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `k-${crypto.randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' };
}

function resourceAllowed(indicator) {
  let url;
  try { url = new URL(indicator); } catch { return false; }
  if (RESOURCE_PREFIXES.length) return RESOURCE_PREFIXES.some((p) => indicator.startsWith(p));
  return url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

function configuration(keys) {
  return {
    clients: M2M_CLIENTS.map((c) => ({
      ...c,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    jwks: { keys },
    async findAccount(ctx, id) {
      const user = USERS[id];
      if (!user) return undefined;
      return { accountId: id, async claims() { return { ...user }; } };
    },
    claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
    // DCR clients (the TS SDK) register with `scope: "mcp:tools offline_access"`: every value must be
    // listed here, or registration fails with invalid_client_metadata.
    scopes: ['openid', 'offline_access', 'profile', 'email', SCOPE],
    cookies: { keys: ['test-only-cookie-signing-key-0123456789'] },
    pkce: { required: () => true }, // every client, public or confidential; S256 is the only method
    // Refresh tokens for any client allowed the grant (MCP clients rarely ask for offline_access).
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      ClientCredentials: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      Grant: 3600,
      Interaction: 600,
      Session: 3600,
      IdToken: 3600,
      RefreshToken: 86400,
    },
    features: {
      devInteractions: { enabled: true }, // GET/POST /interaction/:uid forms (login, consent)
      registration: { enabled: true }, // open DCR: no initial access token
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // authorization request carried exactly one resource: use it at the token endpoint
        // even when the token request omits `resource`.
        defaultResource: async (ctx, client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        async getResourceServerInfo(ctx, resourceIndicator) {
          if (!resourceAllowed(resourceIndicator)) throw new errors.InvalidTarget();
          return {
            scope: SCOPE,
            audience: resourceIndicator, // RFC 8707: aud = the MCP server's URL
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt', // RFC 9068 JWT (typ at+jwt), signed with the provider's key
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // PKCE for the interactive flow, no implicit/hybrid for anyone.
    responseTypes: ['code'],
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: 'RS256',
    },
  };
}

// PROVIDER_JWKS_FILE: a private JWKS to sign with (tests that must forge tokens with the real key).
let keys = process.env.PROVIDER_JWKS_FILE
  ? JSON.parse(fs.readFileSync(process.env.PROVIDER_JWKS_FILE, 'utf8')).keys
  : [newSigningKey()];
let provider;
let handler;
let issuer;

function buildProvider() {
  const p = new Provider(issuer, configuration(keys));
  p.on('server_error', (ctx, err) => console.error('server_error', err));
  handler = p.callback();
  return p;
}

// POST /__test/rotate: a new key signs from now on (the old one stays published), as an
// issuer rotating its keys does.
async function testRoute(req, res) {
  if (req.method === 'POST' && req.url === '/__test/rotate') {
    keys = [newSigningKey(), ...keys];
    provider = buildProvider(); // storage (clients, grants, sessions) is module-level, survives
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: keys[0].kid, kids: keys.map((k) => k.kid) }));
    return true;
  }
  return false;
}

const server = http.createServer(async (req, res) => {
  if (req.url.startsWith('/__test/') && (await testRoute(req, res))) return;
  handler(req, res);
});

server.listen(wantedPort, HOST, () => {
  const { port } = server.address();
  issuer = `http://${HOST}:${port}`;
  provider = buildProvider();
  process.stdout.write(`READY ${JSON.stringify({ issuer, port, kid: keys[0].kid })}\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
