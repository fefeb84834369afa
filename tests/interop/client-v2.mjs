// The TypeScript SDK v2 (@modelcontextprotocol/client) as the client, on both eras. See common.mjs.
//
// Legacy: its default `versionNegotiation` mode, `initialize` (2025-11-25). Modern: pinned
// with `versionNegotiation: {mode: {pin: '2026-07-28'}}` (no fallback to `initialize`).
// On the modern era an input_required result is fulfilled by the SDK itself (its
// `inputRequired.autoFulfill`, on by default): it runs the registered sampling handler
// for every request of the round, concurrently, and retries the tools/call with the
// answers and the echoed requestState, up to `inputRequired.maxRounds` rounds.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { MODERN, main } from './common.mjs';

await main({
  name: 'sdk-v2',
  eras: ['legacy', 'modern'],
  makeClient: (capabilities, era) =>
    new Client(
      { name: 'interop-v2', version: '1.0.0' },
      {
        capabilities,
        ...(era === 'modern' && {
          versionNegotiation: { mode: { pin: MODERN } },
          inputRequired: { autoFulfill: true, maxRounds: 10 },
        }),
      },
    ),
  onSampling: (client, handler) => client.setRequestHandler('sampling/createMessage', handler),
  callTool: (client, params, options) => client.callTool(params, options), // no resultSchema argument in v2
  stdio: (command, args, env) => new StdioClientTransport({ command, args, env }),
  http: (url) => new StreamableHTTPClientTransport(new URL(url)),
});
