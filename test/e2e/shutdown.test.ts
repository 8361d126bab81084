/**
 * SIGTERM, where time is the behaviour (the gateway as its own process, `node bin/tollgate.mjs serve`):
 * - with idle sessions, open server streams and upstream connections, the process exits promptly (nothing idle
 *   holds the drain, nothing left open keeps the event loop alive);
 * - a client that keeps using its kept-alive connection while the drain begins is answered TG_SHUTTING_DOWN with
 *   `Connection: close`, in the route's protocol, instead of having the connection closed under its next request
 *   (HTTP/1.1's keep-alive race: a reset for a request the gateway never read);
 * - `shutdown.drainMs` is the deadline: a call still running at the deadline is cut then, not earlier and not at
 *   some other deadline, and the process exits right after.
 * Upper bounds are generous multiples of the medians measured on the 2-core CI machine (see each constant), so a
 * regression of seconds fails while load cannot.
 */
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { connectClient, devAuthHeaders, eventually, mcpBackend, route } from '../helpers/gateway.ts';
import { startConfiguredGateway, type ConfiguredGateway, type GatewayProcess } from '../helpers/gateway-process.ts';

/**
 * SIGTERM to exit of an idle gateway (open session with its GET stream, upstream session, keep-alive sockets):
 * median 0.11 s measured on the shared 2-core machine; 5x is 0.55 s, with a 2.5 s floor for scheduling noise. Since the
 * drain leaves kept-alive connections open until clients have been quiet for 0.25 s (HttpServer.drain), add that.
 */
const IDLE_EXIT_BOUND_MS = 2_500;
/** Drain deadline to exit (cut the call, close sessions and upstreams, seal the audit log): median 0.06 s; same floor. */
const AFTER_DEADLINE_BOUND_MS = 2_500;

let fixture: FixtureServer;
const children: ConfiguredGateway[] = [];

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
});

afterAll(async () => {
  for (const c of children) c.dispose();
  await fixture?.close();
});

async function startGateway(drainMs: number): Promise<{ gw: GatewayProcess; headers: Record<string, string> }> {
  const gw = await startConfiguredGateway({ label: 'shutdown', name: 'shutdown', drainMs, routes: mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) });
  children.push(gw);
  return { gw, headers: devAuthHeaders(gw.config, undefined, gw.url) };
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

  it('answers a request on a kept-alive connection during the drain with TG_SHUTTING_DOWN and Connection: close, never a reset', async () => {
    const { gw, headers } = await startGateway(20_000);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
    const post = (): Promise<{ status: number; connection?: string; body: string; socket: unknown }> =>
      new Promise((resolve, reject) => {
        const req = request(
          `${gw.url}/mcp`,
          {
            method: 'POST',
            agent,
            headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28' },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, body: text, socket: req.socket }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    // The same connection carries every request: used back to back, it is never idle long enough to be closed.
    const first = await post();
    expect(first.status, first.body).not.toBe(503);
    gw.child.kill('SIGTERM');
    const outcomes: string[] = [];
    let refused: Awaited<ReturnType<typeof post>> | undefined;
    for (let i = 0; i < 2_000 && refused === undefined; i++) {
      const r = await post().catch((err: NodeJS.ErrnoException) => {
        throw new Error(`request ${i} on the kept-alive connection failed (${err.code ?? err.message}) after ${outcomes.join(',')}`);
      });
      if (r.status === 503) refused = r;
      else outcomes.push(String(r.status));
      expect(r.socket).toBe(first.socket);
    }
    expect(refused, 'the drain never refused a request').toBeDefined();
    expect(refused!.connection).toBe('close');
    const answer = JSON.parse(refused!.body) as { jsonrpc: string; id: unknown; error: { data?: { code?: string } } };
    expect(answer.jsonrpc).toBe('2.0');
    expect(answer.error.data?.code).toBe('TG_SHUTTING_DOWN');
    expect(await gw.exited, gw.stderr()).toBe(0);
    agent.destroy();
  });
});
