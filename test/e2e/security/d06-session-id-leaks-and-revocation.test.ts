/**
 * Issue 12, defect 6: session ids leak, and a session ended with DELETE lives on in other replicas.
 *
 * Three gateway processes share session keys, a Redis and one public name (replicas behind a load balancer). A
 * victim (a principal of the partner trust domain, trusted by every replica) works on replica A and continues on B;
 * then ends its session on A. Whoever holds the old id afterwards (an attacker who copied it, with a stolen token) is
 * refused by A, by B that held the session in memory, and by C that never saw it. The session id itself never
 * reaches an audit record, a log line, a span or an OTLP log record: a keyed fingerprint does, the same on every
 * replica so that they can be joined.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startHttpMcpServer, type FixtureServer } from '../../helpers/mcp-http-server.ts';
import { mcpBackend, route } from '../../helpers/gateway.ts';
import { newSigner } from '../../helpers/jwt.ts';
import { OtlpReceiver } from '../../helpers/otlp-receiver.ts';
import { bearer, cleanRoots, codeOf, post, startSecureGateway, type SecureGateway } from './harness.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
const PUBLIC = 'https://replicas.test';
const partnerSigner = newSigner('ES256', 'partner-shared');
const prefix = `tgsec${randomBytes(4).toString('hex')}:`;

let fixture: FixtureServer;
let receiver: OtlpReceiver;
const replicas: SecureGateway[] = [];

function replica(extraEnv: NodeJS.ProcessEnv = {}): Promise<SecureGateway> {
  return startSecureGateway({
    publicUrl: PUBLIC,
    partnerSigner,
    root: mkdtempSync(join(tmpdir(), 'tollgate-sec-replica-')),
    gatewaySpec: `  redis: { url: "${REDIS_URL}", keyPrefix: "${prefix}" }
  mcp:
    sessionKeys: [{ id: k1, valueFrom: { env: TOLLGATE_SEC_SESSION_KEY } }]
  audit: { sinks: { otlp: true } }
`,
    files: { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) },
    env: { TOLLGATE_SEC_SESSION_KEY: 'sec-0123456789abcdef0123456789abcdef', ...extraEnv },
  });
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  receiver = new OtlpReceiver();
  await receiver.start();
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_METRICS_EXPORTER: 'none', OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_BLRP_SCHEDULE_DELAY: '100' };
  replicas.push(await replica(otel), await replica());
});

afterAll(async () => {
  for (const r of replicas) await r.stop();
  await fixture?.close();
  await receiver?.close();
  cleanRoots();
});

function text(r: unknown): string {
  return ((r as { content?: { text?: string }[] }).content ?? []).map((c) => c.text ?? '').join('');
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('defect 6: session ids never leak, and DELETE ends a session on every replica', () => {
  it('records a fingerprint, not the id, and refuses an ended session everywhere', async () => {
    const [a, b] = replicas as [SecureGateway, SecureGateway];
    const victimToken = a.partner('victim');
    const transport = new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), { requestInit: { headers: bearer(victimToken) } });
    const victim = new Client({ name: 'victim', version: '1.0.0' });
    await victim.connect(transport);
    const sid = transport.sessionId!;
    expect(text(await victim.callTool({ name: 'fixture__echo', arguments: { message: 'on A' } }))).toBe('on A');

    const call = (id: number, message: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'fixture__echo', arguments: { message } } });
    const session = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25', ...bearer(victimToken) };
    // B continues the session from its sealed id (and now holds it in memory).
    const onB = await post(`${b.url}/mcp`, call(2, 'on B'), session);
    expect(onB.status).toBe(200);
    expect(JSON.stringify(onB.body)).toContain('on B');

    // Audit records on both replicas name the session by the same fingerprint, never by its id.
    const recA = await a.record((r) => r.operation === 'tools/call' && r.outcome === 'ok', 'the call on A');
    const recB = await b.record((r) => r.operation === 'tools/call' && r.outcome === 'ok', 'the call on B');
    expect(recA.session).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(recB.session).toBe(recA.session);
    const fingerprint = recA.session!;

    // The victim ends the session on A.
    await transport.terminateSession();
    await victim.close();

    // Whoever replays the id now is refused by A, by B (which held the session), and by C (which never saw it).
    const replayOnA = await post(`${a.url}/mcp`, call(3, 'replayed on A'), session);
    expect(replayOnA.status).toBe(404);
    let replayOnB = await post(`${b.url}/mcp`, call(4, 'replayed on B'), session);
    // The revocation reaches B through Redis pub/sub (it was recorded before the DELETE was answered).
    await until(async () => (replayOnB = await post(`${b.url}/mcp`, call(4, 'replayed on B'), session)).status === 404, 'B to refuse the ended session', 5_000);
    expect(codeOf(replayOnB.body)).toBe('TG_MCP_SESSION_NOT_FOUND');
    const c = await replica();
    replicas.push(c);
    const replayOnC = await post(`${c.url}/mcp`, call(5, 'replayed on C'), session);
    expect(replayOnC.status).toBe(404);
    expect(codeOf(replayOnC.body)).toBe('TG_MCP_SESSION_NOT_FOUND');
    for (const [r, name] of [[a, 'A'], [b, 'B'], [c, 'C']] as const) {
      await r.record((x) => x.code === 'TG_MCP_SESSION_NOT_FOUND' && x.principal === 'spiffe://partner.test/victim', `the replay refused on ${name}`);
    }

    // The id appears nowhere: audit records, process logs, spans, OTLP log records.
    for (const r of replicas) {
      expect(JSON.stringify(r.records())).not.toContain(sid);
      expect(r.proc.stdout() + r.proc.stderr()).not.toContain(sid.slice(0, 16));
    }
    await until(() => receiver.spans.some((s) => s.attributes['mcp.session.id'] === fingerprint), 'a span with the session fingerprint');
    expect(JSON.stringify(receiver.spans)).not.toContain(sid);
    await until(() => receiver.logs.length > 0, 'OTLP audit log records');
    expect(JSON.stringify(receiver.logs)).not.toContain(sid);

    // The victim starts over on B and is served.
    const again = new Client({ name: 'victim', version: '1.0.0' });
    await again.connect(new StreamableHTTPClientTransport(new URL(`${b.url}/mcp`), { requestInit: { headers: bearer(victimToken) } }));
    expect(text(await again.callTool({ name: 'fixture__echo', arguments: { message: 'fresh' } }))).toBe('fresh');
    await again.close();
  });
});
