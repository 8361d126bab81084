/**
 * Config: invalid files are refused with file, line and reason while the running config keeps serving; a route
 * added to a file is served after reload without a restart and without dropping an open session; a file replaced
 * (rename over, unlink + create) or a whole directory swapped is seen; a call in flight on an upstream a reload
 * changed finishes (up to the drain deadline) instead of failing at once.
 */
import { cpSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
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

describe('files replaced, not rewritten', () => {
  const served = async (path: string): Promise<boolean> => (await fetch(`${gw.url}${path}`, { method: 'POST' })).status !== 404;

  it('a route file renamed over, then unlinked and created again, then written in place', async () => {
    writeFileSync(join(gw.dir, '.extra.yaml.tmp'), route('extra', '/extra', ['beta']) + route('renamed', '/renamed', ['beta']));
    renameSync(join(gw.dir, '.extra.yaml.tmp'), join(gw.dir, 'extra.yaml'));
    await eventually(() => served('/renamed'), CONFIG_RELOAD_BOUND_MS, 'the route of the renamed-over file');
    unlinkSync(join(gw.dir, 'extra.yaml'));
    writeFileSync(join(gw.dir, 'extra.yaml'), route('extra', '/extra', ['beta']) + route('recreated', '/recreated', ['beta']));
    await eventually(() => served('/recreated'), CONFIG_RELOAD_BOUND_MS, 'the route of the re-created file');
    expect(await served('/renamed')).toBe(false);
    gw.write('extra.yaml', route('extra', '/extra', ['beta']) + route('inplace', '/inplace', ['beta']));
    await eventually(() => served('/inplace'), CONFIG_RELOAD_BOUND_MS, 'the route of the file written in place');
  });

  it('the config directory itself swapped (no watcher sees it): the periodic digest check reloads it', async () => {
    const incoming = join(dirname(gw.dir), 'incoming');
    cpSync(gw.dir, incoming, { recursive: true });
    writeFileSync(join(incoming, 'extra.yaml'), route('extra', '/extra', ['beta']) + route('swapped', '/swapped', ['beta']));
    renameSync(gw.dir, join(dirname(gw.dir), 'routes-old'));
    renameSync(incoming, gw.dir);
    // The check runs every second: 5x plus scheduling noise.
    await eventually(() => served('/swapped'), 5_000, 'the route of the swapped directory');
    rmSync(join(dirname(gw.dir), 'routes-old'), { recursive: true, force: true });
    // Watched again: an in-place edit in the new directory is seen at watcher speed.
    gw.write('extra.yaml', route('extra', '/extra', ['beta']) + route('after-swap', '/after-swap', ['beta']));
    await eventually(() => served('/after-swap'), CONFIG_RELOAD_BOUND_MS, 'an edit in the swapped-in directory');
  });
});

describe('an upstream changed by a reload drains its calls in flight', () => {
  const alphaWith = (rev: string): string =>
    mcpBackend('alpha', { url: a.url, headers: [{ name: 'x-rev', value: rev }] }) + mcpBackend('beta', { url: b.url }) + route('mcp', '/mcp', ['alpha', 'beta']) + route('beta-only', '/beta', ['beta']);

  /** Starts `alpha__slow` (100 ms a step), resolves once its first progress arrived (it is in flight upstream). */
  async function slowCall(steps: number): Promise<{ result: Promise<unknown> }> {
    let started!: () => void;
    const first = new Promise<void>((r) => (started = r));
    const result = client.callTool({ name: 'alpha__slow', arguments: { steps } }, undefined, { onprogress: () => started(), timeout: 30_000 });
    result.catch(() => started());
    await first;
    return { result };
  }

  it('a call running when its upstream is replaced finishes with its result; new calls use the new upstream', async () => {
    const call = await slowCall(8);
    const before = gw.gateway.state().snapshot.revision;
    gw.write('mcp.yaml', alphaWith('2'));
    await eventually(() => gw.gateway.state().snapshot.revision > before, CONFIG_RELOAD_BOUND_MS, 'the reload');
    // A new call meanwhile goes to the new upstream (a new upstream session), while the old one drains.
    const r = await client.callTool({ name: 'alpha__echo', arguments: { message: 'new' } });
    expect(r.content).toEqual([{ type: 'text', text: 'new' }]);
    const done = (await call.result) as { content: Array<{ text: string }> };
    expect(done.content[0]!.text).toBe('done after 8 steps');
  });

  it('a call still running at the drain deadline (shutdown.drainMs: 2 s here) is cut', async () => {
    const call = await slowCall(60);
    const before = gw.gateway.state().snapshot.revision;
    gw.write('mcp.yaml', alphaWith('3'));
    await eventually(() => gw.gateway.state().snapshot.revision > before, CONFIG_RELOAD_BOUND_MS, 'the reload');
    await expect(call.result).rejects.toThrow();
  });
});

