// The TypeScript SDK's own OAuth client signs in to an MCP server, from scratch, headlessly.
//
//   node signin.mjs SERVER_URL --user alice --era legacy|modern
//
// The SDK does all of OAuth: the server's 401 names its protected resource metadata
// (RFC 9728), which names the authorization server; the SDK discovers it, registers a
// client (dynamic registration), and builds the authorization URL with PKCE (S256) and
// the server's URL as `resource` (RFC 8707). Here, `redirectToAuthorization` plays the
// person's browser: it follows the provider's redirects with a cookie jar, fills in the
// login and consent forms, and stops at the redirect that carries the code;
// `finishAuth` trades it for a token, and the client connects again. It then calls the
// summarizer's tool, answering its sampling request, and prints one JSON object.
import { parseArgs } from 'node:util';

import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: { user: { type: 'string', default: 'alice' }, era: { type: 'string', default: 'legacy' } },
});
const serverUrl = new URL(positionals[0]);
const REDIRECT = 'http://127.0.0.1:9/callback'; // never reached: the code is read off the redirect
const SUMMARY = 'The council will repave Elm Street in May.';
const browsed = [];

class CookieJar {
  constructor() { this.cookies = new Map(); }
  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const [name, value] = [pair.slice(0, pair.indexOf('=')).trim(), pair.slice(pair.indexOf('=') + 1).trim()];
      const expired = attributes.some((a) => /^\s*(expires=Thu, 01 Jan 1970|max-age=0\b)/i.test(a));
      if (expired || !value) this.cookies.delete(name); else this.cookies.set(name, value);
    }
  }
  header() { return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; '); }
}

async function browse(jar, url, init = {}) {
  const response = await fetch(url, { ...init, redirect: 'manual', headers: { ...init.headers, cookie: jar.header() } });
  jar.store(response);
  browsed.push(`${init.method ?? 'GET'} ${new URL(url).pathname} ${response.status}`);
  return response;
}

// The person in the browser: sign in as `user`, consent, and hand back the redirect's query.
async function consent(authorizationUrl, user) {
  const jar = new CookieJar();
  let response = await browse(jar, authorizationUrl);
  for (let hop = 0; hop < 12; hop += 1) {
    const location = new URL(response.headers.get('location'), authorizationUrl).href;
    if (location.startsWith(REDIRECT)) return new URL(location).searchParams;
    const page = await (await browse(jar, location)).text();
    const prompt = /name="prompt" value="(\w+)"/.exec(page)?.[1];
    const action = new URL(/<form[^>]*action="([^"]+)"/.exec(page)?.[1] ?? '', location).href;
    if (!prompt) throw new Error(`no sign-in or consent form at ${location}`);
    const form = new URLSearchParams({ prompt, ...(prompt === 'login' && { login: user, password: 'any' }) });
    const posted = await browse(jar, action, {
      method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    response = await browse(jar, new URL(posted.headers.get('location'), action).href);
  }
  throw new Error('the authorization server redirected too often');
}

class HeadlessSignIn {
  constructor(user) { this.user = user; }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return {
      client_name: 'nox -s identity', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'], token_endpoint_auth_method: 'none',
    };
  }
  clientInformation() { return this.client; }
  saveClientInformation(client) { this.client = client; }
  tokens() { return this.saved; }
  saveTokens(tokens) { this.saved = tokens; }
  discoveryState() { return this.discovery; }
  saveDiscoveryState(state) { this.discovery = state; }
  codeVerifier() { return this.verifier; }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  async redirectToAuthorization(url) { this.callback = await consent(url.href, this.user); }
}

function newClient() {
  const client = new Client({ name: 'identity', version: '1.0.0' }, {
    capabilities: { sampling: {} },
    ...(options.era === 'modern' && { versionNegotiation: { mode: { pin: '2026-07-28' } } }),
  });
  client.setRequestHandler('sampling/createMessage', async () => (
    { model: 'identity', role: 'assistant', content: { type: 'text', text: SUMMARY } }
  ));
  return client;
}

const signIn = new HeadlessSignIn(options.user);
let unauthorized = null;
let client = newClient();
let transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: signIn });
try {
  await client.connect(transport);
} catch (error) {
  if (!(error instanceof UnauthorizedError) || !signIn.callback) throw error;
  unauthorized = error.message;
  await transport.finishAuth(signIn.callback);
  client = newClient();
  transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: signIn });
  await client.connect(transport);
}
const tools = (await client.listTools()).tools.map((tool) => tool.name);
const result = await client.callTool({ name: 'summarize', arguments: { text: 'The council met on Tuesday.' } });
const claims = JSON.parse(Buffer.from(signIn.tokens().access_token.split('.')[1], 'base64url').toString());
console.log(JSON.stringify({
  unauthorized, registered: Boolean(signIn.client?.client_id), browsed, claims, tools,
  result: result.content?.[0]?.text, isError: result.isError ?? false,
}));
await client.close();
