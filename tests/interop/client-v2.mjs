// The TypeScript SDK v2 (@modelcontextprotocol/client) as the client. See common.mjs.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { main } from './common.mjs';

await main({
  name: 'sdk-v2',
  makeClient: (capabilities) => new Client({ name: 'interop-v2', version: '1.0.0' }, { capabilities }),
  onSampling: (client, handler) => client.setRequestHandler('sampling/createMessage', handler),
  callTool: (client, params, options) => client.callTool(params, options), // no resultSchema argument in v2
  stdio: (command, args, env) => new StdioClientTransport({ command, args, env }),
  http: (url) => new StreamableHTTPClientTransport(new URL(url)),
});
