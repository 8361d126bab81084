/**
 * Config: invalid files are refused with file, line and reason while the running config keeps serving; a route
 * added to a file is served after reload without a restart and without dropping an open session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { connectClient, eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

/**
 * File written -> new route served (watcher, debounce, load, swap): median 0.065 s on the shared 2-core machine;
 * 5x is 0.33 s, with a 1.5 s floor for scheduling noise. Without the watcher only SIGHUP would reload: it fails.
 */
const CONFIG_RELOAD_BOUND_MS = 1_500;

let a: FixtureServer;
let b: FixtureServer;
let gw: TestGateway;
let client: Client;

beforeAll(async () => {
  a = await startHttpMcpServer({ name: 'alpha' });
  b = await startHttpMcpServer({ name: 'beta' });
  gw = await startTestGateway({ 'mcp.yaml': mcpBackend('alpha', { url: a.url }) + route('mcp', '/mcp', ['alpha']) });
  client = await connectClient(`${gw.url}/mcp`);
});

afterAll(async () => {
  await client?.close();
  await gw?.stop();
  await a?.close();
  await b?.close();
});

describe('live config reload', () => {
  it('refuses invalid YAML and keeps the old config serving', async () => {
    const before = gw.gateway.state().snapshot.revision;
    gw.write('broken.yaml', 'apiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: { name: x\nspec: [\n');
    await eventually(() => gw.gateway.readiness().config.rejected !== undefined, 3_000, 'the reload to be refused');
    const refused = gw.gateway.readiness().config.rejected!.issues[0]!;
    expect(refused.file).toMatch(/broken\.yaml$/);
    expect(refused.line).toBeGreaterThan(1);
    expect(gw.gateway.state().snapshot.revision).toBe(before);
    const r = await client.callTool({ name: 'alpha__add', arguments: { a: 1, b: 2 } });
    expect(r.content).toEqual([{ type: 'text', text: '3' }]);
    gw.write('broken.yaml', '');
    await eventually(() => gw.gateway.state().snapshot.revision > before, 3_000, 'the fixed config to apply');
    expect(gw.gateway.readiness().config.rejected).toBeUndefined();
  });

  it('refuses a schema violation and keeps serving', async () => {
    const before = gw.gateway.state().snapshot.revision;
    gw.write('bad-route.yaml', route('other', '/other', ['no-such-backend']));
    await eventually(() => gw.gateway.readiness().config.rejected !== undefined, 3_000, 'the reload to be refused');
    expect(gw.gateway.readiness().config.rejected!.issues[0]!.message).toContain('unknown Backend "no-such-backend"');
    expect(gw.gateway.state().snapshot.revision).toBe(before);
    gw.write('bad-route.yaml', '');
    await eventually(() => gw.gateway.state().snapshot.revision > before, 3_000, 'the fixed config to apply');
    const r = await client.callTool({ name: 'alpha__add', arguments: { a: 2, b: 2 } });
    expect(r.content).toEqual([{ type: 'text', text: '4' }]);
  });

  it('serves a route added to a file without restarting and without dropping the open session', async () => {
    const before = gw.gateway.state().snapshot.revision;
    gw.write('mcp.yaml', mcpBackend('alpha', { url: a.url }) + mcpBackend('beta', { url: b.url }) + route('mcp', '/mcp', ['alpha', 'beta']) + route('beta-only', '/beta', ['beta']));
    // Timed to the new route answering a request, from outside.
    const ms = await eventually(async () => (await fetch(`${gw.url}/beta`, { method: 'POST' })).status !== 404, 10_000, 'the new route to be served');
    console.log(`config reload (file written -> new route served): ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(CONFIG_RELOAD_BOUND_MS);
    expect(gw.gateway.state().snapshot.revision).toBeGreaterThan(before);
    // The session opened before the reload keeps working and now sees the new upstream too.
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toContain('alpha__add');
    expect(tools).toContain('beta__add');
    const r = await client.callTool({ name: 'beta__add', arguments: { a: 20, b: 1 } });
    expect(r.content).toEqual([{ type: 'text', text: '21' }]);
    // The new route is served.
    const fresh = await connectClient(`${gw.url}/beta`);
    try {
      expect((await fresh.listTools()).tools.map((t) => t.name)).toContain('beta__echo');
    } finally {
      await fresh.close();
    }
  });

  it('keeps an unchanged upstream (and its sessions) across reloads', async () => {
    const sessionsBefore = a.sessions();
    const before = gw.gateway.state().snapshot.revision;
    gw.write('extra.yaml', route('extra', '/extra', ['beta']));
    await eventually(() => gw.gateway.state().snapshot.revision > before, 3_000, 'reload');
    const r = await client.callTool({ name: 'alpha__echo', arguments: { message: 'still here' } });
    expect(r.content).toEqual([{ type: 'text', text: 'still here' }]);
    expect(a.sessions()).toBe(sessionsBefore);
  });
});
