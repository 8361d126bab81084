/**
 * Sealed session ids between two replicas in one process (so what each replica does is observable from here): both
 * share `mcp.sessionKeys` and the data dir of the dev trust domain, nothing else. A session minted by one replica
 * continues on the other with what its id carries, and only that:
 * - its scope: a session of /mcp/<server> continues there, never as the federated /mcp;
 * - its upstream sessions: the other replica continues the same upstream session (its state), no new initialize;
 * - ending a session closes its upstream sessions.
 * (mcp-replicas.test.ts does the same with gateway processes; mcp-sessions.test.ts covers identity binding and expiry.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { eventually, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const VERSION = '2025-11-25';

let fixture: FixtureServer;
let dataDir: string;
let a: TestGateway;
let b: TestGateway;

function gatewayYaml(): string {
  return `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: replica }
spec:
  listener: { host: 127.0.0.1, port: 0 }
  shutdown: { drainMs: 500 }
  dataDir: ${dataDir}
  audit: { enabled: false }
  mcp:
    sessionKeys:
      - { id: k1, valueFrom: { env: TOLLGATE_TEST_SESSION_KEY } }
`;
}

beforeAll(async () => {
  process.env.TOLLGATE_TEST_SESSION_KEY = 'session-tokens-test-0123456789abcdef';
  dataDir = mkdtempSync(join(tmpdir(), 'tollgate-tokens-'));
  fixture = await startHttpMcpServer({ name: 'fixture', counter: true });
  const files = { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) };
  a = await startTestGateway(files, { gatewayYaml: gatewayYaml() });
  b = await startTestGateway(files, { gatewayYaml: gatewayYaml() });
});

afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await fixture?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  delete process.env.TOLLGATE_TEST_SESSION_KEY;
});

async function initialize(gw: TestGateway, path: string): Promise<string> {
  const res = await fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { ...HEADERS, ...gw.authHeaders() },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
  });
  expect(res.status).toBe(200);
  await res.text();
  return res.headers.get('mcp-session-id')!;
}

/** A tools/call in session `sid` on `gw` at `path`: the HTTP status and the text of the result (JSON or SSE). */
async function call(gw: TestGateway, path: string, sid: string, name: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${gw.url}${path}`, {
    method: 'POST',
    headers: { ...HEADERS, ...gw.authHeaders(), 'mcp-session-id': sid, 'mcp-protocol-version': VERSION },
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name, arguments: {} } }),
  });
  const body = await res.text();
  const m = /"text":"([^"]*)"/.exec(body);
  return { status: res.status, text: m?.[1] ?? body };
}

describe('sealed session ids across replicas', () => {
  it('continues the same upstream session on the other replica (its state), without a new upstream initialize', async () => {
    const sid = await initialize(a, '/mcp');
    expect(await call(a, '/mcp', sid, 'fixture__count')).toEqual({ status: 200, text: '1' });
    expect(await call(a, '/mcp', sid, 'fixture__count')).toEqual({ status: 200, text: '2' });
    const upstreamSessions = fixture.sessions();
    // b never saw this session: it rebuilds it from the id, and continues the upstream session the id names.
    expect(await call(b, '/mcp', sid, 'fixture__count')).toEqual({ status: 200, text: '3' });
    expect(fixture.sessions()).toBe(upstreamSessions);
    expect(await call(a, '/mcp', sid, 'fixture__count')).toEqual({ status: 200, text: '4' });
  });

  it('keeps the scope of a single-server session: never continued as the federated endpoint', async () => {
    const sid = await initialize(a, '/mcp/fixture');
    expect(await call(a, '/mcp/fixture', sid, 'count')).toEqual({ status: 200, text: '1' });
    // On the replica that never saw it: the federated endpoint does not take it...
    const federated = await call(b, '/mcp', sid, 'fixture__count');
    expect(federated.status).toBe(404);
    expect(federated.text).toContain('TG_MCP_SESSION_NOT_FOUND');
    // ...its own endpoint does.
    expect(await call(b, '/mcp/fixture', sid, 'count')).toEqual({ status: 200, text: '2' });
  });

  it('closes the upstream sessions of a session ended with DELETE', async () => {
    const sid = await initialize(a, '/mcp');
    expect((await call(a, '/mcp', sid, 'fixture__count')).status).toBe(200);
    const before = fixture.sessions();
    const del = await fetch(`${a.url}/mcp`, { method: 'DELETE', headers: { ...a.authHeaders(), 'mcp-session-id': sid, 'mcp-protocol-version': VERSION } });
    expect(del.status).toBe(200);
    await eventually(() => fixture.sessions() === before - 1, 5_000, 'the upstream session to be closed');
    expect((await call(a, '/mcp', sid, 'fixture__count')).status).toBe(404);
  });
});
