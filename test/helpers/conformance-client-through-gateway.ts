/**
 * A conformance-suite client (`conformance client --command ...`) that talks to the suite's test server THROUGH a
 * Tollgate gateway: the gateway, started here in-process with the suite's server (the last argument) as its only
 * upstream on an anonymous single-server route, is the client the suite really tests (upstream-side behaviour such
 * as SSE resumption); an official SDK client drives it from the front. The scenario is MCP_CONFORMANCE_SCENARIO.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startGateway } from '../../src/main.ts';

const upstream = process.argv.at(-1);
if (upstream === undefined || !/^https?:\/\//.test(upstream)) throw new Error(`usage: conformance-client-through-gateway.ts <server url> (got ${upstream})`);
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';
const root = mkdtempSync(join(tmpdir(), 'tollgate-conformance-client-'));
const dir = join(root, 'routes');
mkdirSync(dir);
writeFileSync(join(dir, 'gateway.yaml'), 'apiVersion: tollgate.dev/v1alpha1\nkind: Gateway\nmetadata: { name: conformance }\nspec:\n  listener: { host: 127.0.0.1, port: 0 }\n  shutdown: { drainMs: 1000 }\n');
writeFileSync(
  join(dir, 'mcp.yaml'),
  `apiVersion: tollgate.dev/v1alpha1\nkind: Backend\nmetadata: { name: conf }\nspec: ${JSON.stringify({ protocol: 'mcp', url: upstream })}\n---\n` +
    `apiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: { name: mcp }\nspec: ${JSON.stringify({ auth: { anonymous: true }, rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/mcp' } }], backendRefs: [{ name: 'conf' }] }] })}\n`,
);
const gateway = await startGateway({ configDir: dir, host: '127.0.0.1', port: 0, logLevel: process.env.TOLLGATE_LOG_LEVEL ?? 'warn' });
let code = 0;
try {
  const client = new Client({ name: 'tollgate-conformance-client', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp/conf`)));
  // The SDK client opens its GET stream after initialize without waiting for it, and the gateway opens the
  // upstream's in turn: let that happen before the scenario's call, so the suite's server does not take that first
  // GET for the reconnection it waits for.
  await new Promise((r) => setTimeout(r, 300));
  if (scenario === 'sse-retry') {
    const r = await client.callTool({ name: 'test_reconnection', arguments: {} }, undefined, { timeout: 30_000 });
    process.stdout.write(`test_reconnection: ${JSON.stringify(r.content)}\n`);
  } else if (scenario === 'tools_call') {
    const tools = (await client.listTools()).tools;
    const add = tools.find((t) => t.name === 'add_numbers');
    if (add) await client.callTool({ name: 'add_numbers', arguments: { a: 5, b: 3 } });
  }
  await client.close();
} catch (err) {
  process.stderr.write(`conformance client through the gateway: ${(err as Error).message}\n`);
  code = 1;
} finally {
  await gateway.shutdown();
  rmSync(root, { recursive: true, force: true });
}
process.exit(code);
