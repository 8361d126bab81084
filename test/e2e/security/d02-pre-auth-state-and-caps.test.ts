/**
 * Issue 12, defect 2: pre-authentication state and a cross-tenant DoS.
 *
 * A victim's 2026-07-28 (stateless) call is in flight on a real SDK upstream. An attacker without credentials sends
 * thousands of 2026 requests, each describing a different client (on the old gateway each made a "stateless group"
 * before authentication, and past 4096 the oldest, the victim's, was evicted and its call cancelled). Then an
 * authenticated attacker of another trust domain opens sessions, stateless contexts and streams up to the
 * per-principal caps. Every refusal is audited with its code; nothing is created for the unauthenticated flood; the
 * attacker's newcomers are refused (429 TG_CAP_REACHED), never the victim's work.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mcpBackend, route } from '../../helpers/gateway.ts';
import { bearer, cleanRoots, codeOf, modernRequest, post, startGateUpstream, startSecureGateway, type GateUpstream, type SecureGateway } from './harness.ts';

let gate: GateUpstream;
let gw: SecureGateway;

const CAPS = `  mcp:
    limits: { sessionsPerPrincipal: 2, statelessContextsPerPrincipal: 2, streamsPerPrincipal: 1 }
`;

beforeAll(async () => {
  gate = await startGateUpstream();
  gw = await startSecureGateway({ gatewaySpec: CAPS, files: { 'mcp.yaml': mcpBackend('gate', { url: gate.url }) + route('mcp', '/mcp', ['gate']) } });
});

afterAll(async () => {
  await gw?.stop();
  await gate?.close();
  cleanRoots();
});

const INIT = (name: string) => ({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name, version: '1' } } });

async function activeSessions(): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl ?? gw.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('tollgate_active_sessions{'));
  return Number(line?.split(' ').pop() ?? NaN);
}

/** Runs `n` tasks with at most `width` at once. */
async function flood(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await task(next++);
  }));
}

describe('defect 2: nothing before authentication, per-principal caps, no eviction', () => {
  it('keeps a victim\'s in-flight 2026 call through an unauthenticated flood of client descriptions', async () => {
    const victim = bearer(gw.dev('victim'));
    const call = modernRequest(7, 'tools/call', { name: 'gate__wait', arguments: { tag: 'victim' } }, { name: 'victim-app', version: '1' });
    const inFlight = post(`${gw.url}/mcp`, call.body, { ...call.headers, ...victim });
    await expectEventually(() => gate.waiting() === 1, 'the victim call to reach the upstream');
    const before = await activeSessions();

    const N = 4_200;
    const statuses = new Map<number, number>();
    await flood(N, 32, async (i) => {
      const m = modernRequest(i, 'tools/list', {}, { name: 'flood', version: String(i) });
      const r = await post(`${gw.url}/mcp`, m.body, m.headers);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    });
    expect(Object.fromEntries(statuses)).toEqual({ 401: N });
    // Nothing was created for callers that never authenticated.
    expect(await activeSessions()).toBe(before);

    // The victim's call was never cancelled: released, it answers.
    gate.release();
    const done = await inFlight;
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(JSON.stringify(done.body)).toContain('released victim');
    // Every refusal of the flood is in the audit log, with its code and no principal.
    await expectEventually(() => gw.records().filter((r) => r.code === 'TG_UNAUTHENTICATED' && r.operation === 'mcp/post').length >= N, 'the flood refusals in the audit log');
  });

  it('refuses a principal\'s newcomers at its caps, and never the other principal\'s', async () => {
    const attacker = bearer(gw.partner('attacker'));
    const victim = bearer(gw.dev('victim'));

    // Session era: two sessions each, the attacker's third is refused, the victim still gets hers.
    for (const n of [1, 2]) expect((await post(`${gw.url}/mcp`, INIT(`a${n}`), attacker)).status).toBe(200);
    const third = await post(`${gw.url}/mcp`, INIT('a3'), attacker);
    expect(third.status).toBe(429);
    expect(codeOf(third.body)).toBe('TG_CAP_REACHED');
    const mine = await post(`${gw.url}/mcp`, INIT('v1'), victim);
    expect(mine.status).toBe(200);
    const sid = mine.headers.get('mcp-session-id')!;

    // Stateless contexts (one per client description): the same.
    const modern = (who: Record<string, string>, app: string) => {
      const m = modernRequest(3, 'tools/call', { name: 'gate__echo', arguments: { message: app } }, { name: app, version: '1' });
      return post(`${gw.url}/mcp`, m.body, { ...m.headers, ...who });
    };
    for (const app of ['x1', 'x2']) expect((await modern(attacker, app)).status).toBe(200);
    const over = await modern(attacker, 'x3');
    expect(over.status).toBe(429);
    expect(codeOf(over.body)).toBe('TG_CAP_REACHED');
    expect(JSON.stringify((await modern(victim, 'victim-2')).body)).toContain('victim-2');

    // Long-lived streams (legacy SSE channels): one each.
    const attackerStream = await fetch(`${gw.url}/mcp/sse`, { headers: { accept: 'text/event-stream', ...attacker } });
    expect(attackerStream.status).toBe(200);
    const second = await fetch(`${gw.url}/mcp/sse`, { headers: { accept: 'text/event-stream', ...attacker } });
    expect(second.status).toBe(429);
    expect(codeOf((await second.json()) as Record<string, unknown>)).toBe('TG_CAP_REACHED');
    const victimStream = await fetch(`${gw.url}/mcp/sse`, { headers: { accept: 'text/event-stream', ...victim } });
    expect(victimStream.status).toBe(200);
    await attackerStream.body?.cancel();
    await victimStream.body?.cancel();

    // Each refusal is audited under the attacker's principal with the cap's code.
    await expectEventually(
      () => gw.records().filter((r) => r.code === 'TG_CAP_REACHED' && r.principal === 'spiffe://partner.test/attacker').length >= 3,
      'the cap refusals in the audit log',
    );
    // The victim's session still works.
    const list = await post(`${gw.url}/mcp`, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { ...victim, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
    expect(JSON.stringify(list.body)).toContain('gate__echo');
  });
});

async function expectEventually(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const until = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
