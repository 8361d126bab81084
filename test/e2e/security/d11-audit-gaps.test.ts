/**
 * Issue 12, defect 11: audit gaps.
 *
 * - `arguments: {mode: omit}` now applies to decision records too (their policy input held the full arguments, and
 *   the Authorization header when the policy input asks for it): nothing of the arguments, no credential, anywhere.
 * - Redaction matches sensitive names at any depth and as parts of names (`config.db_password`, `dbPassword`), and
 *   credential values whatever their name (bearer tokens, JWTs, PEM private keys).
 * - A clean shutdown writes a `shutdown` seal that the next start chains from; a signed TAIL marker names the log's
 *   end, so deleting every segment written since a clean restart is reported; a segment cut and re-sealed on recovery
 *   is reported; `tollgate audit verify --strict` (the chart's verification job) fails on both.
 * - Requests refused before a call exists (bad Origin, bad Accept, 413, parse error, unknown session, 401) are each
 *   audited and counted (tollgate_refusals_total) with their code, and the victim keeps working.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpMcpServer, type FixtureServer } from '../../helpers/mcp-http-server.ts';
import { connectClient, mcpBackend, route } from '../../helpers/gateway.ts';
import { bearer, cleanRoots, codeOf, post, startSecureGateway, type SecureGateway } from './harness.ts';

let fixture: FixtureServer;
const gateways: SecureGateway[] = [];

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
});

afterAll(async () => {
  for (const g of gateways) if (g.proc.child.exitCode === null && g.proc.child.signalCode === null) g.proc.child.kill('SIGKILL');
  await fixture?.close();
  cleanRoots();
});

function files(): Record<string, string> {
  return { 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) };
}

/** Everything the audit log holds, as text (every segment). */
function auditText(gw: SecureGateway): string {
  const dir = join(gw.dataDir, 'audit');
  return readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort().map((f) => readFileSync(join(dir, f), 'utf8')).join('');
}

function verify(dir: string, ...flags: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['bin/tollgate.mjs', 'audit', 'verify', dir, ...flags], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly94In0.c2lnbmF0dXJlLWJ5dGVz';
const PEM = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----';
const POLICY = "  policy: { bundle: ../../../bundles/tollgate.tar.gz, input: { headers: [authorization] } }\n";

describe('defect 11: audit gaps', () => {
  it('arguments mode omit applies to decision records: no argument and no credential anywhere in the log', async () => {
    const gw = await startSecureGateway({ files: files(), gatewaySpec: `${POLICY}  audit: { arguments: { mode: omit } }\n`.replace('../../../bundles', join(process.cwd(), 'bundles')) });
    gateways.push(gw);
    const token = gw.dev('victim');
    const client = await connectClient(`${gw.url}/mcp`, { headers: bearer(token) });
    await client.callTool({ name: 'fixture__echo', arguments: { message: 'omit-me-please', config: { db_password: 'hunter2-db' } } });
    await client.close();
    const decision = await gw.record((r) => r.kind === 'decision' && r.operation === 'tools/call', 'the decision record of the call');
    expect(JSON.stringify(decision)).not.toContain('"arguments"');
    const call = await gw.record((r) => r.kind === 'call' && r.operation === 'tools/call', 'the call record');
    expect(call.args).toBeUndefined();
    const text = auditText(gw);
    for (const secret of ['omit-me-please', 'hunter2-db', token, token.split('.')[2]!]) expect(text).not.toContain(secret);
    expect(await gw.stop()).toBe(0);
  });

  it('redacts sensitive names at any depth and credential values whatever their name', async () => {
    const gw = await startSecureGateway({ files: files(), gatewaySpec: POLICY.replace('../../../bundles', join(process.cwd(), 'bundles')) });
    gateways.push(gw);
    const token = gw.dev('victim');
    const client = await connectClient(`${gw.url}/mcp`, { headers: bearer(token) });
    const args = { message: 'kept in clear', config: { db_password: 'hunter2-db', nested: { dbPassword: 'hunter3-db', apiKey: 'k-123456' } }, note: `Bearer ${'x'.repeat(24)}`, blob: JWT, key: PEM, max_tokens: 42 };
    await client.callTool({ name: 'fixture__echo', arguments: args });
    await client.close();
    const call = await gw.record((r) => r.kind === 'call' && r.operation === 'tools/call', 'the call record');
    expect(call.args).toEqual({
      message: 'kept in clear',
      config: { db_password: '[REDACTED]', nested: { dbPassword: '[REDACTED]', apiKey: '[REDACTED]' } },
      note: '[REDACTED]',
      blob: '[REDACTED]',
      key: '[REDACTED]',
      max_tokens: 42,
    });
    const text = auditText(gw);
    for (const secret of ['hunter2-db', 'hunter3-db', 'k-123456', 'x'.repeat(24), JWT, 'MIGHAgEAMBMGByqGSM49', token]) expect(text).not.toContain(secret);
    // The decision record keeps what the policy saw, minus the same secrets (its input had the Authorization header).
    const decision = await gw.record((r) => r.kind === 'decision' && r.operation === 'tools/call', 'the decision record');
    expect(JSON.stringify(decision)).toContain('kept in clear');
    expect(await gw.stop()).toBe(0);
  });

  it('seals a clean shutdown, chains the next start from it, and reports a deleted tail and a recovered seal under --strict', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tollgate-sec-d11-'));
    mkdirSync(join(root, 'routes'));
    const run = async (): Promise<SecureGateway> => {
      const gw = await startSecureGateway({ root, files: files() });
      gateways.push(gw);
      const c = await connectClient(`${gw.url}/mcp`, { headers: bearer(gw.dev('victim')) });
      await c.callTool({ name: 'fixture__echo', arguments: { message: 'a call' } });
      await c.close();
      return gw;
    };
    const first = await run();
    expect(await first.stop()).toBe(0);
    const dir = join(first.dataDir, 'audit');
    const segments = (): string[] => readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();
    const lastLine = (f: string): Record<string, unknown> => JSON.parse(readFileSync(join(dir, f), 'utf8').trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(lastLine(segments().at(-1)!)).toMatchObject({ kind: 'seal', shutdown: true });
    expect(verify(dir, '--strict').status).toBe(0);

    // A clean restart chains from the shutdown seal.
    const second = await run();
    expect(await second.stop()).toBe(0);
    expect(segments().length).toBe(2);
    const strict = verify(dir, '--strict');
    expect(strict.out).not.toContain('finding');
    expect(strict.status).toBe(0);

    // Attack: delete every segment written since the clean restart. The chain alone would still verify.
    const gone = segments().at(-1)!;
    rmSync(join(dir, gone));
    rmSync(join(dir, gone.replace('.jsonl', '.idx')), { force: true });
    const afterDelete = verify(dir, '--strict');
    expect(afterDelete.out).toMatch(/finding: the log's tail is missing: TAIL \(signed\) names seq \d+, the log ends at seq \d+/);
    expect(afterDelete.status).toBe(1);
    const lenient = verify(dir);
    expect(lenient.status).toBe(0); // without --strict the finding is shown, not fatal
    expect(lenient.out).toContain("finding: the log's tail is missing");

    // Attack: cut the open segment of a killed run; the next start re-seals it with `recovered`.
    rmSync(join(dir, 'TAIL'));
    const third = await run();
    third.proc.child.kill('SIGKILL');
    await third.proc.exited;
    const open = segments().at(-1)!;
    const bytes = readFileSync(join(dir, open));
    truncateSync(join(dir, open), bytes.indexOf('\n') + 1); // keep only its open record
    rmSync(join(dir, 'LOCK'), { force: true });
    const fourth = await run();
    expect(await fourth.stop()).toBe(0);
    const recovered = verify(dir, '--strict');
    expect(recovered.out).toMatch(/finding: segment \d+ was sealed on recovery/);
    expect(recovered.status).toBe(1);
    rmSync(root, { recursive: true, force: true });
  });

  it('audits and counts every refusal before a call exists, with its code, and the victim keeps working', async () => {
    const gw = await startSecureGateway({ files: files(), gatewaySpec: '  http: { maxBodyBytes: 65536, allowedOrigins: [https://app.example] }\n' });
    gateways.push(gw);
    const token = gw.dev('victim');
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'c', version: '1' } } };
    const cases: Array<{ code: string; send: () => Promise<{ status: number; body: Record<string, unknown> | string }> }> = [
      { code: 'TG_UNAUTHENTICATED', send: () => post(`${gw.url}/mcp`, init) },
      { code: 'TG_ORIGIN_FORBIDDEN', send: () => post(`${gw.url}/mcp`, init, { ...bearer(token), origin: 'https://evil.example' }) },
      { code: 'TG_NOT_ACCEPTABLE', send: () => post(`${gw.url}/mcp`, init, { ...bearer(token), accept: 'text/html' }) },
      { code: 'TG_PAYLOAD_TOO_LARGE', send: () => post(`${gw.url}/mcp`, { ...init, pad: 'x'.repeat(100_000) }, bearer(token)) },
      { code: 'TG_PARSE_ERROR', send: () => post(`${gw.url}/mcp`, '{"jsonrpc":"2.0",', bearer(token)) },
      { code: 'TG_MCP_SESSION_NOT_FOUND', send: () => post(`${gw.url}/mcp`, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { ...bearer(token), 'mcp-session-id': 'no-such-session', 'mcp-protocol-version': '2025-06-18' }) },
    ];
    const metrics = async (): Promise<string> => (await fetch(`${gw.adminUrl ?? gw.url}/metrics`)).text();
    for (const c of cases) {
      const r = await c.send();
      expect(r.status, c.code).toBeGreaterThanOrEqual(400);
      expect(codeOf(r.body), `${c.code}: ${JSON.stringify(r.body).slice(0, 200)}`).toBe(c.code);
      await gw.record((rec) => rec.code === c.code, `the audit record of ${c.code}`);
      expect(await metrics()).toMatch(new RegExp(`^tollgate_refusals_total\\{[^}]*code="${c.code}"[^}]*\\} [1-9]`, 'm'));
    }
    const victim = await connectClient(`${gw.url}/mcp`, { headers: bearer(token) });
    expect(JSON.stringify((await victim.callTool({ name: 'fixture__echo', arguments: { message: 'fine' } })).content)).toContain('fine');
    await victim.close();
  });
});
