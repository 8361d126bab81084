/**
 * Many replicas, no shared store: two gateway processes (`tollgate serve`) share session keys through their config.
 * A session initialized on one continues on the other, which rebuilds it from the sealed session id and continues
 * the same upstream session (no new upstream initialize). The second replica has rotated keys: it seals with a new
 * key and still opens ids sealed with the old one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { EVERYTHING_STDIO, devAuthHeaders, eventually, mcpBackend, route } from '../helpers/gateway.ts';
import { freePort } from '../helpers/net.ts';

interface Replica {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly dir: string;
}

let fixture: FixtureServer;
let a: Replica;
let b: Replica;
const KEY_OLD = 'k1-0123456789abcdef0123456789abcdef';
const KEY_NEW = 'k2-fedcba9876543210fedcba9876543210';

/**
 * Both replicas share a data dir, hence the dev trust domain that signs the test's JWT-SVIDs; each keeps its own
 * audit log (two writers never share one).
 */
let dataDir: string;
let auth: Record<string, string>;

function gatewayYaml(keys: string[], auditDir: string): string {
  return `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: replica }
spec:
  # Replicas behind one name: tokens name its resources, whichever replica serves them.
  listener: { host: 127.0.0.1, port: 0, publicUrl: https://replicas.test }
  shutdown: { drainMs: 1000 }
  dataDir: ${dataDir}
  audit: { dir: ${auditDir} }
  mcp:
    sessionKeys:
${keys.map((k) => `      - { id: ${k}, valueFrom: { env: TOLLGATE_KEY_${k.toUpperCase()} } }`).join('\n')}
`;
}

async function startReplica(keys: string[]): Promise<Replica> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-replica-'));
  writeFileSync(join(dir, 'gateway.yaml'), gatewayYaml(keys, join(dir, 'audit')));
  writeFileSync(join(dir, 'mcp.yaml'), mcpBackend('fixture', { url: fixture.url }) + mcpBackend('everything', EVERYTHING_STDIO) + route('mcp', '/mcp', ['fixture', 'everything']));
  const port = await freePort();
  const proc = spawn(process.execPath, ['bin/tollgate.mjs', 'serve', '--config', dir, '--port', String(port)], {
    env: { ...process.env, TOLLGATE_LOG_LEVEL: 'info', TOLLGATE_KEY_K1: KEY_OLD, TOLLGATE_KEY_K2: KEY_NEW },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => {
    if (proc.exitCode !== null) throw new Error(`replica exited: ${out.slice(-1000)}`);
    return fetch(`${url}/healthz`).then((r) => r.ok, () => false);
  }, 20_000, 'replica to listen');
  return { proc, url, dir };
}

async function stopReplica(r: Replica | undefined): Promise<void> {
  if (!r) return;
  const exited = new Promise((res) => r.proc.once('exit', res));
  r.proc.kill('SIGTERM');
  await exited;
  rmSync(r.dir, { recursive: true, force: true });
}

function text(r: unknown): string {
  return (((r as { content?: { text?: string }[] }).content) ?? []).map((c) => c.text ?? '').join('');
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  dataDir = mkdtempSync(join(tmpdir(), 'tollgate-replica-data-'));
  [a, b] = await Promise.all([startReplica(['k1']), startReplica(['k2', 'k1'])]);
  process.env.TOLLGATE_KEY_K1 = KEY_OLD;
  process.env.TOLLGATE_KEY_K2 = KEY_NEW;
  auth = devAuthHeaders(a.dir);
}, 60_000);

afterAll(async () => {
  await Promise.all([stopReplica(a), stopReplica(b)]);
  await fixture?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('a session across two gateway processes', () => {
  it('continues on replica B a session initialized on replica A', async () => {
    const onA = new Client({ name: 'roaming-client', version: '1.0.0' });
    const ta = new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), { requestInit: { headers: auth } });
    await onA.connect(ta);
    const sid = ta.sessionId!;
    expect(sid.startsWith('k1.')).toBe(true);
    expect(text(await onA.callTool({ name: 'fixture__add', arguments: { a: 1, b: 2 } }))).toBe('3');
    const upstreamSessions = fixture.sessions();

    // The load balancer now sends the client to B: same session id, no new initialize.
    const onB = new Client({ name: 'roaming-client', version: '1.0.0' });
    const tb = new StreamableHTTPClientTransport(new URL(`${b.url}/mcp`), { sessionId: sid, requestInit: { headers: auth } });
    await onB.connect(tb);
    expect(text(await onB.callTool({ name: 'fixture__add', arguments: { a: 20, b: 22 } }))).toBe('42');
    expect(text(await onB.callTool({ name: 'everything__echo', arguments: { message: 'on b' } }))).toBe('Echo: on b');
    const names = (await onB.listTools()).tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['fixture__add', 'everything__echo']));
    // B continued A's upstream session instead of opening its own.
    expect(fixture.sessions()).toBe(upstreamSessions);
    // And back to A: still the same session.
    expect(text(await onA.callTool({ name: 'fixture__echo', arguments: { message: 'back on a' } }))).toBe('back on a');
    await onA.close();
    await onB.close();
  });

  it('refuses a forged or tampered session id on either replica with 404', async () => {
    const init = await fetch(`${a.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...auth },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    const sid = init.headers.get('mcp-session-id')!;
    await init.text();
    const flipped = sid.slice(0, -2) + (sid.at(-2) === 'A' ? 'B' : 'A') + sid.at(-1);
    for (const [target, id] of [
      [b.url, flipped],
      [b.url, 'k1.bm90LWEtdG9rZW4'],
      [b.url, 'k9.whatever'],
      [a.url, flipped],
    ] as const) {
      const res = await fetch(`${target}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25', ...auth },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      expect(res.status).toBe(404);
    }
  });

  it('seals with the newest key after rotation, and the old replica cannot open it', async () => {
    const t = new StreamableHTTPClientTransport(new URL(`${b.url}/mcp`), { requestInit: { headers: auth } });
    const c = new Client({ name: 'c', version: '1' });
    await c.connect(t);
    expect(t.sessionId!.startsWith('k2.')).toBe(true);
    await c.close();
    const res = await fetch(`${a.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': t.sessionId!, 'mcp-protocol-version': '2025-11-25', ...auth },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    expect(res.status).toBe(404);
  });
});
