// The TypeScript SDK v1 (@modelcontextprotocol/sdk) as the client: the legacy era only
// (it has no 2026-07-28). See common.mjs.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { main } from './common.mjs';

await main({
  name: 'sdk-v1',
  eras: ['legacy'],
  makeClient: (capabilities) => new Client({ name: 'interop-v1', version: '1.0.0' }, { capabilities }),
  onSampling: (client, handler) => client.setRequestHandler(CreateMessageRequestSchema, handler),
  callTool: (client, params, options) => client.callTool(params, undefined, options), // (params, resultSchema, options)
  stdio: (command, args, env) => new StdioClientTransport({ command, args, env }),
  http: (url) => new StreamableHTTPClientTransport(new URL(url)),
});
