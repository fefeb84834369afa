// Shared by client-v1.mjs and client-v2.mjs: command line, scripted LLM, one tool call.
//
//   node client-v1.mjs --transport stdio --command "summarizer" --profile tools summarize
//   node client-v1.mjs --transport http --url http://127.0.0.1:8000/mcp --profile text summarize
//
// A scenario is scenarios/NAME.json (or a path to a .json file):
//   {"tool": "...", "arguments": {...}, "replies": [...]}   (or "replies_by_profile": {"tools": [...], "text": [...]})
// Each reply answers one sampling request, in arrival order:
//   "some text"                                  -> text reply, stopReason "endTurn"
//   {"tool_use": [{"id", "name", "input"}, ...]} -> tool_use blocks, stopReason "toolUse"
//   {"error": "message"}                         -> the request fails (JSON-RPC error)
//   {"content": ...}                             -> sent as it is (model/role filled in)
// With --cancel-after N the client cancels the tool call once N sampling requests are
// open, and no request is answered: each waits for the server to cancel it in turn
// (notifications/cancelled), and `cancelled` counts those that were.
// Prints one JSON line: the tool result and every sampling request received.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const CAPABILITIES = {
  tools: { sampling: { tools: {} } },
  text: { sampling: {} },
  none: {},
};

export function parseCli() {
  const { values, positionals } = parseArgs({
    options: {
      transport: { type: 'string', default: 'stdio' },
      url: { type: 'string' },
      command: { type: 'string' },
      profile: { type: 'string', default: 'tools' },
      'cancel-after': { type: 'string' },
    },
    allowPositionals: true,
  });
  const usage =
    'usage: --transport stdio|http (--command "cmd args" | --url URL) --profile tools|text|none SCENARIO';
  if (positionals.length !== 1 || !(values.profile in CAPABILITIES)) throw new Error(usage);
  if (values.transport === 'stdio' ? !values.command : values.transport !== 'http' || !values.url) {
    throw new Error(usage);
  }
  const cancelAfter = values['cancel-after'] === undefined ? 0 : Number(values['cancel-after']);
  return { ...values, cancelAfter, scenario: positionals[0] };
}

export function loadScenario(name, profile) {
  const here = dirname(fileURLToPath(import.meta.url));
  const path = name.endsWith('.json') ? name : join(here, 'scenarios', `${name}.json`);
  const scenario = JSON.parse(readFileSync(path, 'utf8'));
  const replies = scenario.replies_by_profile?.[profile] ?? scenario.replies ?? [];
  return { ...scenario, replies };
}

function toResult(reply) {
  const base = { model: 'scripted', role: 'assistant' };
  if (typeof reply === 'string') {
    return { ...base, stopReason: 'endTurn', content: { type: 'text', text: reply } };
  }
  if (reply.tool_use) {
    const calls = [reply.tool_use].flat();
    return { ...base, stopReason: 'toolUse', content: calls.map((c) => ({ type: 'tool_use', ...c })) };
  }
  if (reply.error) throw new Error(reply.error);
  return { ...base, ...reply };
}

/** Resolves with true when `signal` aborts, with false after `ms`. */
function aborted(signal, ms) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(true); }, { once: true });
  });
}

/**
 * A sampling handler that answers from `replies` and records what it was asked.
 * With `cancelAfter`, it calls `onCancelPoint` when that many requests are open and
 * answers none of them: it counts those the server cancels within 3 s.
 */
export function scriptedLLM(replies, { cancelAfter = 0, onCancelPoint = () => {} } = {}) {
  const queue = [...replies];
  const llm = { requests: [], requestIds: [], problems: [], inFlight: 0, maxInFlight: 0, cancelled: 0 };
  llm.handler = async (request, extra) => {
    llm.requests.push(request.params);
    // v1 passes the request's id and AbortSignal in `extra`, v2 in `ctx.mcpReq`.
    llm.requestIds.push(extra?.requestId ?? extra?.mcpReq?.id);
    if (cancelAfter) {
      llm.inFlight += 1;
      if (llm.requests.length === cancelAfter) onCancelPoint();
      const signal = extra?.signal ?? extra?.mcpReq?.signal;
      const wasCancelled = await aborted(signal, 3_000);
      llm.cancelled += wasCancelled;
      llm.inFlight -= 1;
      throw new Error(wasCancelled ? 'cancelled by the server' : 'never cancelled');
    }
    if (queue.length === 0) {
      const problem = `unexpected sampling request #${llm.requests.length}`;
      llm.problems.push(problem);
      throw new Error(problem);
    }
    const reply = queue.shift();
    llm.inFlight += 1;
    llm.maxInFlight = Math.max(llm.maxInFlight, llm.inFlight);
    try {
      await new Promise((resolve) => setTimeout(resolve, 10)); // let concurrent requests overlap
      return toResult(reply);
    } finally {
      llm.inFlight -= 1;
    }
  };
  llm.unused = () => queue.length;
  return llm;
}

/** Notes the protocol version the server answers `initialize` with. */
function tapInitialize(transport, seen) {
  let handler;
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    get: () => handler,
    set: (h) => {
      handler = h && ((message, extra) => {
        if (message?.result?.protocolVersion) seen.protocolVersion = message.result.protocolVersion;
        return h(message, extra);
      });
    },
  });
}

/**
 * Runs one scenario with an SDK adapter:
 *   { name, makeClient(capabilities), onSampling(client, handler), callTool(client, params, options),
 *     stdio(command, args, env), http(url) }
 */
export async function main(sdk) {
  const out = { client: sdk.name };
  let client;
  try {
    const cli = parseCli();
    const scenario = loadScenario(cli.scenario, cli.profile);
    Object.assign(out, { scenario: cli.scenario, profile: cli.profile, transport: cli.transport });
    const capabilities = CAPABILITIES[cli.profile];
    const toolCall = new AbortController();
    const llm = scriptedLLM(scenario.replies, {
      cancelAfter: cli.cancelAfter,
      onCancelPoint: () => toolCall.abort('the user gave up'),
    });
    client = sdk.makeClient(capabilities);
    // Registering a sampling handler throws unless the sampling capability is declared.
    if (capabilities.sampling) sdk.onSampling(client, llm.handler);
    const [command, ...args] = (cli.command ?? '').split(/\s+/).filter(Boolean);
    // Without `env` the SDKs' stdio transports pass on only HOME, LOGNAME, PATH, SHELL, TERM, USER.
    const transport =
      cli.transport === 'stdio' ? sdk.stdio(command, args, { ...process.env }) : sdk.http(cli.url);
    tapInitialize(transport, out);
    await client.connect(transport);
    const started = Date.now();
    const params = { name: scenario.tool, arguments: scenario.arguments ?? {} };
    const options = { timeout: 120_000, signal: toolCall.signal };
    try {
      out.result = await sdk.callTool(client, params, options);
    } catch (error) {
      if (!toolCall.signal.aborted) throw error;
      out.result = { cancelled_by_client: true };
      while (llm.inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    out.call_ms = Date.now() - started;
    Object.assign(out, {
      requests: llm.requests,
      max_in_flight: llm.maxInFlight,
      cancelled: llm.cancelled,
      request_ids: llm.requestIds,
      unused_replies: llm.unused(),
      problems: llm.problems,
    });
  } catch (error) {
    out.error = `${error?.name ?? 'Error'}: ${error?.message ?? error}`;
    process.exitCode = 1;
  } finally {
    await client?.close().catch(() => {});
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
