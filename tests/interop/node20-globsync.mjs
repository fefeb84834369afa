// Lets @modelcontextprotocol/conformance (built for Node >= 22) start on Node 20:
//   node --import ./node20-globsync.mjs node_modules/@modelcontextprotocol/conformance/dist/index.js server --url ...
// It imports `globSync` from `fs`, which Node 20 lacks; only its `tier-check` command
// calls it. On Node >= 22 this file does nothing.
import fs from 'node:fs';
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const FS_WITH_GLOBSYNC = `data:text/javascript,${encodeURIComponent(
  "export * from 'node:fs'; export { default } from 'node:fs';" +
    "export function globSync() { throw new Error('fs.globSync needs Node >= 22'); }",
)}`;

export async function resolve(specifier, context, next) {
  if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL?.includes('/conformance/dist/')) {
    return { url: FS_WITH_GLOBSYNC, shortCircuit: true };
  }
  return next(specifier, context);
}

if (isMainThread && !fs.globSync) register(import.meta.url);
