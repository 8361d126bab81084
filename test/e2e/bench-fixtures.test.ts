/**
 * The bench's fixtures and load generator against real peers: the raw backend speaks MCP to the official SDK
 * client, the captured request template replays in the SDK's session with fresh ids, the generators count JSON-RPC
 * errors as failures, and the gateway (as the bench starts it: its own process, generated config) serves a session;
 * the kserve-infer scenario relays both kinds of infer to a real Triton through the bare proxy and the gateway.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRawBackend, type RawBackend } from '../../bench/fixtures/raw-backend.ts';
import { openBenchSession, type BenchSession } from '../../bench/lib/mcp-client.ts';
import { runClosed, runPaced } from '../../bench/lib/load.ts';
import { startBareProxy, startGatewayProcess, type GatewayProcess, type Proxy } from '../../bench/lib/targets.ts';
import { KSERVE_PLAN, kserveResult, setupKServe } from '../../bench/lib/kserve.ts';
import { SCENARIOS } from '../../bench/scenarios.ts';
import { STAGES } from '../../bench/stages.ts';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('bench fixtures', () => {
  let raw: RawBackend;

  it('the raw backend answers the official SDK client (initialize, tools/list, tools/call)', async () => {
    raw = await startRawBackend({ name: 'raw', tools: 297 });
    cleanups.push(() => raw.close());
    const client = new Client({ name: 't', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL(raw.url)));
    cleanups.push(() => client.close());
    expect((await client.listTools()).tools).toHaveLength(300);
    expect(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })).toMatchObject({ content: [{ type: 'text', text: '5' }] });
    const big = await client.callTool({ name: 'big', arguments: { kb: 100 } });
    expect((big.content as Array<{ text: string }>)[0]!.text).toHaveLength(100 * 1024);
  });

  it('captures the SDK request and replays it in the same session with a fresh id', async () => {
    const s: BenchSession = await openBenchSession(raw.url, { method: 'tools/call', name: 'echo', arguments: { message: 'hi' } });
    cleanups.push(() => s.close());
    const t = s.template;
    expect(t.sample).toContain('"method":"tools/call"');
    expect(t.headers['mcp-session-id']).toBe(s.sessionId);
    expect(t.headers['mcp-protocol-version']).toBe(s.protocolVersion);
    expect(t.headers.accept).toBe('application/json, text/event-stream');
    const res = await fetch(t.url, { method: 'POST', headers: t.headers, body: `${t.before}4242${t.after}` });
    expect(await res.json()).toEqual({ jsonrpc: '2.0', id: 4242, result: { content: [{ type: 'text', text: 'hi' }] } });
  });

  it('the closed-loop and paced generators complete requests and count JSON-RPC errors as failures', async () => {
    const ok = await openBenchSession(raw.url, { method: 'tools/call', name: 'echo', arguments: { message: 'hi' } });
    cleanups.push(() => ok.close());
    const c1 = await runClosed(ok.template, 1, 0.3);
    expect(c1.errors).toBe(0);
    expect(c1.requests).toBeGreaterThan(10);
    expect(c1.latency.p50).toBeGreaterThan(0);
    const paced = await runPaced(ok.template, 200, 0.5, 4);
    expect(paced.errors).toBe(0);
    expect(paced.requests).toBe(100);
    // The same bytes with an unknown method: HTTP 200 carrying a JSON-RPC error must not count as a success.
    const bad = { ...ok.template, before: ok.template.before.replace('"tools/call"', '"tools/nope"') };
    const broken = await runClosed(bad, 1, 0.2);
    expect(broken.errors).toBeGreaterThan(0);
    expect(broken.requests).toBeGreaterThan(0);
  });

  it('the reference proxy and the gateway process serve a real session to the same backend', async () => {
    const proxy: Proxy = await startBareProxy(raw.url, 4);
    cleanups.push(() => proxy.child.stop());
    const viaProxy = await openBenchSession(proxy.url, { method: 'tools/call', name: 'echo', arguments: { message: 'p' } });
    cleanups.push(() => viaProxy.close());
    expect((await runClosed(viaProxy.template, 2, 0.3)).errors).toBe(0);
    // autocannon drops its connections mid-answer at the end of every run: the proxy must neither die nor keep its
    // upstream connections busy with unread bodies (it did both once, and every later run failed).
    const big = await openBenchSession(proxy.url, { method: 'tools/call', name: 'big', arguments: { kb: 100 } });
    cleanups.push(() => big.close());
    await runClosed(big.template, 32, 0.5);
    const after = await runClosed(big.template, 1, 0.3);
    expect(after.errors).toBe(0);
    expect(after.requests).toBeGreaterThan(5);

    const work = mkdtempSync(join(tmpdir(), 'bench-test-'));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));
    const scenario = SCENARIOS.find((s) => s.name === 'call-small')!;
    const gw: GatewayProcess = await startGatewayProcess({ work, scenario, backendUrls: { files: raw.url }, variant: { label: 'gateway', stages: [] }, logLevel: 'info' });
    cleanups.push(() => gw.child.stop());
    const viaGateway = await openBenchSession(gw.url, scenario.gatewayCall);
    cleanups.push(() => viaGateway.close());
    expect(viaGateway.sessionId).toBeDefined();
    const r = await runClosed(viaGateway.template, 2, 0.3);
    expect(r.errors).toBe(0);
    expect(r.requests).toBeGreaterThan(10);
  });

  it('every stage configures the gateway and authenticates the bench client with what it sends', async () => {
    const scenario = SCENARIOS.find((s) => s.name === 'call-small')!;
    const work = mkdtempSync(join(tmpdir(), 'bench-stages-'));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));
    expect(STAGES.map((s) => s.name)).toContain('identity');
    const gw = await startGatewayProcess({ work, scenario, backendUrls: { files: raw.url }, variant: { label: 'gateway', stages: STAGES }, logLevel: 'warn' });
    cleanups.push(() => gw.child.stop());
    expect(gw.headers.authorization).toMatch(/^Bearer ey/);
    const s = await openBenchSession(gw.url, scenario.gatewayCall, { ...gw.headers });
    cleanups.push(() => s.close());
    expect((await runClosed(s.template, 1, 0.2)).errors).toBe(0);
    // Without the identity stage's credential the same gateway refuses the session: the stage really is on.
    await expect(openBenchSession(gw.url, scenario.gatewayCall)).rejects.toThrow();
    // And the policy stage's argument rule refuses a path outside the tool's root.
    expect(STAGES.map((s) => s.name)).toContain('policy');
    const outside = { method: 'tools/call' as const, name: 'files__read_file', arguments: { path: '/etc/passwd' } };
    await expect(openBenchSession(gw.url, outside, { ...gw.headers })).rejects.toThrow(/outside|denied|policy/i);
    // The limits stage decided the calls in its Redis: the rate bucket and the cost budget have counters.
    const report = (await (await fetch(`${gw.adminUrl}/limits`)).json()) as { store: string; limits: Array<{ name: string; counters: unknown[] }> };
    expect(report.store).toBe('redis');
    expect(report.limits.find((l) => l.name === 'bench-cost')?.counters).toHaveLength(1);
  });

  it('the kserve-infer scenario relays JSON and binary-tensor infers to a real Triton directly, through the bare proxy and the gateway', async () => {
    const plan = { ...KSERVE_PLAN, rounds: 2, requests: 5, warmup: 2 };
    // Warm-up fails the setup on any wrong answer (a status other than 200, or a binary answer shorter than its tensor).
    const setup = await setupKServe([{ label: 'gateway[none]', stages: [] }], plan, { logLevel: 'warn', withProxy: true });
    try {
      expect(setup.targets.map((t) => t.label)).toEqual(['direct', 'proxy', 'gateway[none]']);
      const rounds = [await setup.measure(0), await setup.measure(1)];
      const r = kserveResult(setup, plan, rounds);
      expect(r.errors).toBe(0);
      for (const kind of ['json', 'binary'] as const) {
        for (const label of ['direct', 'proxy', 'gateway[none]']) {
          const s = r.summary[kind][label]!;
          // Every round's samples pooled: 2 rounds x 5 infers, percentiles in order.
          expect(s.pooled.count).toBe(10);
          expect(s.pooled.p50).toBeGreaterThan(0);
          expect(s.pooled.p98).toBeGreaterThanOrEqual(s.pooled.p50);
          expect(s.pooled.p99).toBeGreaterThanOrEqual(s.pooled.p98);
          expect(s.slow).toBeLessThanOrEqual(10);
        }
        expect(Object.keys(rounds[0]!.kinds[kind].added).sort()).toEqual(['gateway[none]', 'proxy']);
      }
    } finally {
      await setup.teardown();
    }
  }, 180_000);
});
