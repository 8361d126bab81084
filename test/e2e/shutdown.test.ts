/**
 * SIGTERM, where time is the behaviour (the gateway as its own process, `node bin/tollgate.mjs serve`):
 * - with idle sessions, open server streams and upstream connections, the process exits promptly (nothing idle
 *   holds the drain, nothing left open keeps the event loop alive);
 * - `shutdown.drainMs` is the deadline: a call still running at the deadline is cut then, not earlier and not at
 *   some other deadline, and the process exits right after.
 * Upper bounds are generous multiples of the medians measured on the 2-core CI machine (see each constant), so a
 * regression of seconds fails while load cannot.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { connectClient, devAuthHeaders, eventually, mcpBackend, route } from '../helpers/gateway.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';

/**
 * SIGTERM to exit of an idle gateway (open session with its GET stream, upstream session, keep-alive sockets):
 * median 0.11 s measured on the shared 2-core machine; 5x is 0.55 s, with a 2.5 s floor for scheduling noise.
 */
const IDLE_EXIT_BOUND_MS = 2_500;
/** Drain deadline to exit (cut the call, close sessions and upstreams, seal the audit log): median 0.06 s; same floor. */
const AFTER_DEADLINE_BOUND_MS = 2_500;

let fixture: FixtureServer;
const roots: string[] = [];
const children: GatewayProcess[] = [];

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
});

afterAll(async () => {
  for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  await fixture?.close();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

async function startGateway(drainMs: number): Promise<{ gw: GatewayProcess; headers: Record<string, string> }> {
  const root = mkdtempSync(join(tmpdir(), 'tollgate-shutdown-'));
  roots.push(root);
  const config = join(root, 'routes');
  mkdirSync(config);
  writeFileSync(
    join(config, 'gateway.yaml'),
    `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: shutdown }
spec:
  listener: { host: 127.0.0.1, port: 0 }
  shutdown: { drainMs: ${drainMs} }
`,
  );
  writeFileSync(join(config, 'mcp.yaml'), mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']));
  const gw = await startGatewayProcess(config, { ...process.env, TOLLGATE_LOG_LEVEL: 'info' });
  const headers = devAuthHeaders(config, undefined, gw.url);
  children.push(gw);
  return { gw, headers };
}

describe('SIGTERM', () => {
  it('exits promptly when nothing is in flight, though sessions, server streams and upstreams are open', async () => {
    // A long drain deadline: only an idle exchange wrongly counted as in flight would make the exit wait for it.
    const { gw, headers } = await startGateway(20_000);
    const client = await connectClient(`${gw.url}/mcp`, { headers });
    expect((await client.callTool({ name: 'fixture__add', arguments: { a: 1, b: 2 } })).content).toEqual([{ type: 'text', text: '3' }]);
    await eventually(() => fixture.sessions() > 0, 5_000, 'the upstream session');
    const t0 = performance.now();
    gw.child.kill('SIGTERM');
    const code = await gw.exited;
    const ms = performance.now() - t0;
    console.log(`SIGTERM -> exit (idle): ${ms.toFixed(0)} ms`);
    expect(code, gw.stderr()).toBe(0);
    expect(gw.stdout()).toContain('"msg":"stopped"');
    expect(gw.stdout()).not.toContain('drain deadline reached');
    expect(ms).toBeLessThan(IDLE_EXIT_BOUND_MS);
    await client.close().catch(() => {});
  });

  it('cuts a call still running at the drainMs deadline, then exits', async () => {
    const drainMs = 1_500;
    const { gw, headers } = await startGateway(drainMs);
    const client = await connectClient(`${gw.url}/mcp`, { headers });
    const slowBefore = fixture.metas.filter((m) => m.tool === 'slow').length;
    // 100 steps of 100 ms: ten seconds, far beyond the deadline (and short of the 10 s default deadline it must
    // not fall back to being noticeably shorter than).
    const slow = client.callTool({ name: 'fixture__slow', arguments: { steps: 100 } }, undefined, { timeout: 60_000 }).then(
      () => 'answered',
      (err: unknown) => `failed: ${(err as Error).message}`,
    );
    await eventually(() => fixture.metas.filter((m) => m.tool === 'slow').length > slowBefore, 10_000, 'the slow call upstream');
    const t0 = performance.now();
    gw.child.kill('SIGTERM');
    const code = await gw.exited;
    const ms = performance.now() - t0;
    console.log(`SIGTERM -> exit (call cut at drainMs=${drainMs}): ${ms.toFixed(0)} ms`);
    expect(code, gw.stderr()).toBe(0);
    // Not before the deadline: the drain waited for the call...
    expect(ms).toBeGreaterThanOrEqual(drainMs - 50);
    // ...and not (much) after it.
    expect(ms).toBeLessThan(drainMs + AFTER_DEADLINE_BOUND_MS);
    const cut = /"cut":(\d+)[^\n]*"msg":"drain deadline reached/.exec(gw.stdout());
    expect(cut, gw.stdout()).not.toBeNull();
    expect(Number(cut![1])).toBeGreaterThanOrEqual(1);
    expect(await slow).toMatch(/^failed/);
    await client.close().catch(() => {});
  });
});
