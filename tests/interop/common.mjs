// Shared by client-v1.mjs and client-v2.mjs: command line, scripted LLM, one tool call.
//
//   node client-v1.mjs --transport stdio --command "summarizer" --profile tools summarize
//   node client-v2.mjs --transport http --url http://127.0.0.1:8000/mcp --era modern --profile text summarize
//   node client-v2.mjs --batch < runs.jsonl
//
// With --batch each line of standard input is one run's arguments (a JSON array of the
// strings above), run in order in this one process: a Node start and the SDK's import
// paid once for all of a server's runs, not once per run.
//
// --era legacy (default) connects with `initialize` (2025-11-25): the server pushes
// sampling/createMessage while the tool call is open. --era modern pins 2026-07-28 (SDK v2
// only): a tool call returns input_required with the round's sampling requests, and the
// SDK answers them with the registered handler and retries the call by itself.
//
// A scenario is scenarios/NAME.json (or a path to a .json file):
//   {"tool": "...", "arguments": {...}, "rules": [...], "expect": {...}}
// The scripted LLM answers each request with the first rule that matches it (see
// `ruleFor`), whatever order the requests come in, and every answer is made from the
// request it answers (`${persona}`, `${option_a}`, `${tag}`; see `placeholders`), so the
// checks (ts_clients.py, checks.py) can tell an answer applied to the wrong request.
// With --cancel-after N the client cancels the tool call once N sampling requests are
// open, and no request is answered: each waits for the server to cancel it in turn
// (notifications/cancelled), and `cancelled` counts those that were.
// Prints one JSON line: the tool result, every sampling request received with its
// answer, and the tools/call traffic (one entry per tools/call sent, one per
// input_required result received).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const CAPABILITIES = {
  tools: { sampling: { tools: {} } },
  text: { sampling: {} },
  none: {},
};
export const MODERN = '2026-07-28';

export function parseCli(args = process.argv.slice(2)) {
  const { values, positionals } = parseArgs({
    args,
    options: {
      transport: { type: 'string', default: 'stdio' },
      url: { type: 'string' },
      command: { type: 'string' },
      era: { type: 'string', default: 'legacy' },
      profile: { type: 'string', default: 'tools' },
      'cancel-after': { type: 'string' },
    },
    allowPositionals: true,
  });
  const usage =
    'usage: --transport stdio|http (--command "cmd args" | --url URL) [--era legacy|modern] ' +
    '--profile tools|text|none SCENARIO';
  if (positionals.length !== 1 || !(values.profile in CAPABILITIES)) throw new Error(usage);
  if (!['legacy', 'modern'].includes(values.era)) throw new Error(usage);
  if (values.transport === 'stdio' ? !values.command : values.transport !== 'http' || !values.url) {
    throw new Error(usage);
  }
  const cancelAfter = values['cancel-after'] === undefined ? 0 : Number(values['cancel-after']);
  return { ...values, cancelAfter, scenario: positionals[0] };
}

export function loadScenario(name) {
  const here = dirname(fileURLToPath(import.meta.url));
  const path = name.endsWith('.json') ? name : join(here, 'scenarios', `${name}.json`);
  return JSON.parse(readFileSync(path, 'utf8'));
}

// What an answer is made from. checks.py computes the same from the recorded requests.

function blocks(message) {
  return [message.content].flat();
}

function firstText(params) {
  const first = params.messages[0];
  return first ? blocks(first).find((block) => block.type === 'text')?.text ?? '' : '';
}

/** The request without its fence nonces (each request, and each retry, draws its own). */
function normalized(text) {
  return text.replace(/[0-9a-f]{32}/g, '#');
}

/** Assistant turns in the history: 0 for a first ask, 1 after one answer, ... */
export function turnOf(params) {
  return params.messages.filter((message) => message.role === 'assistant').length;
}

/**
 * What an answer may be built from, all taken from the request it answers:
 *   persona   the council member the system prompt speaks as ("You are the NAME.")
 *   option_a  the first line of ballot option A
 *   tag       8 hex digits of SHA-256 over the system prompt, the first message and the turn
 */
export function placeholders(params) {
  const system = params.systemPrompt ?? '';
  const text = firstText(params);
  const turn = turnOf(params);
  const digest = createHash('sha256')
    .update(`${normalized(system)}\n${normalized(text)}\n${turn}`)
    .digest('hex');
  return {
    persona: /You are the ([^.]+)\./.exec(system)?.[1] ?? '',
    option_a: /Option A:\n([^\n]*)/.exec(text)?.[1] ?? '',
    tag: digest.slice(0, 8),
  };
}

/** The first rule whose conditions all hold: `says` (in the first message), `persona`, `turn`. */
function ruleFor(rules, params) {
  const values = placeholders(params);
  const text = firstText(params);
  return rules.find(
    (rule) =>
      (rule.says === undefined || text.includes(rule.says)) &&
      (rule.persona === undefined || rule.persona === values.persona) &&
      (rule.turn === undefined || rule.turn === turnOf(params)),
  );
}

function filled(template, values) {
  if (typeof template === 'string') {
    return template.replace(/\$\{(\w+)\}/g, (_, name) => values[name] ?? '');
  }
  if (Array.isArray(template)) return template.map((item) => filled(item, values));
  if (template && typeof template === 'object') {
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, filled(v, values)]));
  }
  return template;
}

/**
 * A rule's reply for `profile`, filled in from the request:
 *   "some text"                                  -> text reply, stopReason "endTurn"
 *   {"json": {...}}                              -> that value as JSON text
 *   {"tool_use": [{"id", "name", "input"}, ...]} -> tool_use blocks, stopReason "toolUse"
 *   {"error": "message"}                         -> the request fails (JSON-RPC error)
 */
export function replyTo(rules, profile, params) {
  const rule = ruleFor(rules, params);
  if (!rule) return undefined;
  const template = rule[profile] ?? rule.reply;
  return filled(template, placeholders(params));
}

function toResult(reply) {
  const base = { model: 'scripted', role: 'assistant' };
  if (typeof reply === 'string') {
    return { ...base, stopReason: 'endTurn', content: { type: 'text', text: reply } };
  }
  if (reply.json !== undefined) {
    return { ...base, stopReason: 'endTurn', content: { type: 'text', text: JSON.stringify(reply.json) } };
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
 * A sampling handler that answers by `rules` and records what it was asked and answered.
 * With `cancelAfter`, it calls `onCancelPoint` when that many requests are open and
 * answers none of them: it counts those the server cancels within 3 s.
 */
export function scriptedLLM(rules, profile, { cancelAfter = 0, onCancelPoint = () => {} } = {}) {
  const llm = {
    requests: [], answers: [], requestIds: [], problems: [], inFlight: 0, maxInFlight: 0, cancelled: 0,
  };
  llm.handler = async (request, extra) => {
    const index = llm.requests.length;
    llm.requests.push(request.params);
    llm.answers.push(null);
    // v1 passes the request's id and AbortSignal in `extra`, v2 in `ctx.mcpReq`.
    llm.requestIds.push(extra?.requestId ?? extra?.mcpReq?.id ?? null);
    if (cancelAfter) {
      llm.inFlight += 1;
      if (llm.requests.length === cancelAfter) onCancelPoint();
      const signal = extra?.signal ?? extra?.mcpReq?.signal;
      const wasCancelled = await aborted(signal, 3_000);
      llm.cancelled += wasCancelled;
      llm.inFlight -= 1;
      throw new Error(wasCancelled ? 'cancelled by the server' : 'never cancelled');
    }
    const reply = replyTo(rules, profile, request.params);
    if (reply === undefined) {
      const problem = `no rule answers sampling request #${index + 1}: ${firstText(request.params).slice(0, 80)}`;
      llm.problems.push(problem);
      throw new Error(problem);
    }
    llm.answers[index] = reply;
    llm.inFlight += 1;
    llm.maxInFlight = Math.max(llm.maxInFlight, llm.inFlight);
    try {
      await new Promise((resolve) => setTimeout(resolve, 10)); // let concurrent requests overlap
      return toResult(reply);
    } finally {
      llm.inFlight -= 1;
    }
  };
  return llm;
}

/**
 * Watches the transport: the protocol version `initialize` answers with, and every
 * tools/call sent (with the inputResponses keys and requestState it carries) and every
 * input_required result received (with its inputRequests keys and requestState).
 */
function tapTraffic(transport, out) {
  const traffic = { calls: [], rounds: [] };
  const states = [];
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    if (message?.method === 'tools/call') {
      const params = message.params ?? {};
      traffic.calls.push({
        response_keys: Object.keys(params.inputResponses ?? {}).sort(),
        state_bytes: params.requestState?.length ?? 0,
        state_echoed: params.requestState === undefined ? null : params.requestState === states.at(-1),
        protocol_version: params._meta?.['io.modelcontextprotocol/protocolVersion'] ?? null,
      });
    }
    return send(message, options);
  };
  let handler;
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    get: () => handler,
    set: (h) => {
      handler = h && ((message, extra) => {
        const result = message?.result;
        if (result?.protocolVersion) out.protocol_version = result.protocolVersion;
        if (result?.resultType === 'input_required') {
          states.push(result.requestState);
          traffic.rounds.push({
            request_keys: Object.keys(result.inputRequests ?? {}).sort(),
            state_bytes: result.requestState?.length ?? 0,
          });
        }
        return h(message, extra);
      });
    },
  });
  return traffic;
}

/**
 * Runs the command line's scenario with an SDK adapter, or with --batch each run that
 * standard input lists; prints one JSON line per run. The adapter:
 *   { name, eras, makeClient(capabilities, era), onSampling(client, handler),
 *     callTool(client, params, options), stdio(command, args, env), http(url) }
 */
export async function main(sdk) {
  if (process.argv[2] !== '--batch') {
    await runOnce(sdk, process.argv.slice(2));
    return;
  }
  const lines = readFileSync(0, 'utf8').split('\n').filter((line) => line.trim());
  for (const line of lines) await runOnce(sdk, JSON.parse(line));
}

async function runOnce(sdk, argv) {
  const out = { client: sdk.name };
  let client;
  try {
    const cli = parseCli(argv);
    if (!sdk.eras.includes(cli.era)) throw new Error(`${sdk.name} does not speak the ${cli.era} era`);
    const scenario = loadScenario(cli.scenario);
    Object.assign(out, { scenario: cli.scenario, era: cli.era, profile: cli.profile, transport: cli.transport });
    const capabilities = CAPABILITIES[cli.profile];
    const toolCall = new AbortController();
    const llm = scriptedLLM(scenario.rules ?? [], cli.profile, {
      cancelAfter: cli.cancelAfter,
      onCancelPoint: () => toolCall.abort('the user gave up'),
    });
    client = sdk.makeClient(capabilities, cli.era);
    // Registering a sampling handler throws unless the sampling capability is declared.
    if (capabilities.sampling) sdk.onSampling(client, llm.handler);
    const [command, ...args] = (cli.command ?? '').split(/\s+/).filter(Boolean);
    // Without `env` the SDKs' stdio transports pass on only HOME, LOGNAME, PATH, SHELL, TERM, USER.
    const transport =
      cli.transport === 'stdio' ? sdk.stdio(command, args, { ...process.env }) : sdk.http(cli.url);
    const traffic = tapTraffic(transport, out);
    await client.connect(transport, { timeout: 30_000 });
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
    out.protocol_version ??= traffic.calls[0]?.protocol_version ?? client.getNegotiatedProtocolVersion?.();
    Object.assign(out, {
      requests: llm.requests,
      answers: llm.answers,
      traffic,
      max_in_flight: llm.maxInFlight,
      cancelled: llm.cancelled,
      request_ids: llm.requestIds,
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
