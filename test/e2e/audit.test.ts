/**
 * The audit log end to end: a mixed run through the gateway (official SDK client, SDK upstream) leaves exactly one
 * record per call, `audit verify` accepts the log as written and rejects every edit, deletion and reordering of a
 * record or signature, and `audit query` finds what it should.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/format.ts';
import { queryLog } from '../../src/audit/query.ts';
import { verifyLog } from '../../src/audit/verify.ts';
import type { Call } from '../../src/core/call.ts';
import { startHttpMcpServer, type FixtureServer } from '../helpers/mcp-http-server.ts';
import { DEV_SPIFFE_ID, connectClient, mcpBackend, route, startTestGateway, type TestGateway } from '../helpers/gateway.ts';

const run = promisify(execFile);
const GATEWAY = `apiVersion: tollgate.dev/v1alpha1
kind: Gateway
metadata: { name: test }
spec:
  listener: { host: 127.0.0.1, port: 0 }
  shutdown: { drainMs: 2000 }
  audit:
    segment: { maxRecords: 12 }
    checkpoint: { everyRecords: 6 }
`;

let fixture: FixtureServer;
let gw: TestGateway;
let dir: string;
let dataDir: string;
const finished: string[] = [];
const work = mkdtempSync(join(tmpdir(), 'tollgate-audit-e2e-'));

function records(d = dir): AuditRecord[] {
  return [...queryLog(d, { kinds: ['call', 'decision', 'open', 'checkpoint', 'seal'] })].map((l) => JSON.parse(l) as AuditRecord);
}

beforeAll(async () => {
  fixture = await startHttpMcpServer({ name: 'fixture' });
  gw = await startTestGateway({ 'mcp.yaml': mcpBackend('fixture', { url: fixture.url }) + route('mcp', '/mcp', ['fixture']) }, { gatewayYaml: GATEWAY });
  dataDir = join(gw.dir, '..', '.tollgate');
  dir = join(dataDir, 'audit');
  const settle = gw.gateway.calls.finish.bind(gw.gateway.calls);
  gw.gateway.calls.finish = (call: Call) => {
    finished.push(call.id);
    settle(call);
  };
  // A mixed run: session set-up, lists, tool calls (ok, tool error, unknown tool), prompts, resources, ping, teardown.
  const client = await connectClient(`${gw.url}/mcp`);
  await client.listTools();
  for (let i = 0; i < 12; i++) await client.callTool({ name: 'fixture__echo', arguments: { message: `m-${i}` } });
  await Promise.all([1, 2, 3].map((b) => client.callTool({ name: 'fixture__add', arguments: { a: 1, b } })));
  await client.callTool({ name: 'fixture__echo', arguments: { message: 'with secret', token: 'hunter2' } });
  await expect(client.callTool({ name: 'nobody__nothing', arguments: {} })).rejects.toMatchObject({ code: -32602 });
  await client.getPrompt({ name: 'fixture__greet', arguments: { who: 'auditor' } });
  await client.listResources();
  await client.ping();
  await client.close();
  await gw.shutdown();
});

afterAll(async () => {
  await gw?.stop();
  await fixture?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('audit log of a mixed run', () => {
  it('holds exactly one call record per call the gateway finished', () => {
    const calls = records().filter((r) => r.kind === 'call');
    expect(finished.length).toBeGreaterThan(20);
    expect(calls.map((r) => r.call).sort()).toEqual([...finished].sort());
    expect(new Set(calls.map((r) => r.call)).size).toBe(calls.length);
    const echoes = calls.filter((r) => r.target?.name === 'fixture__echo').map((r) => (r.args as { message: string }).message);
    expect(echoes.sort()).toEqual([...Array.from({ length: 12 }, (_, i) => `m-${i}`), 'with secret'].sort());
    // The identity guard ran first on every call, even the one refused because its tool does not exist: each
    // record names its caller's SPIFFE ID.
    expect(calls.filter((r) => r.principal !== DEV_SPIFFE_ID)).toEqual([]);
    const refused = calls.find((r) => r.code === 'TG_MCP_UNKNOWN_TOOL')!;
    expect(refused).toMatchObject({ protocol: 'mcp', operation: 'tools/call', outcome: 'error', route: 'mcp', principal: DEV_SPIFFE_ID, target: { kind: 'tool', name: 'nobody__nothing' } });
    const add = calls.find((r) => r.target?.name === 'fixture__add')!;
    expect(add).toMatchObject({ upstream: 'fixture', status: 200, outcome: 'ok', target: { kind: 'tool', server: 'fixture', local: 'add' } });
    expect(typeof add.ms).toBe('number');
    expect(typeof add.session).toBe('string');
  });

  it('redacts sensitive argument names', () => {
    const rec = records().find((r) => (r.args as { message?: string } | undefined)?.message === 'with secret')!;
    expect(rec.args).toEqual({ message: 'with secret', token: '[REDACTED]' });
    const raw = readdirSync(dir).filter((f) => f.endsWith('.jsonl')).map((f) => readFileSync(join(dir, f), 'utf8')).join('');
    expect(raw).not.toContain('hunter2');
  });

  it('spans several signed, sealed segments that verify, against the pinned key too', () => {
    expect(readdirSync(dir).filter((f) => f.endsWith('.jsonl')).length).toBeGreaterThanOrEqual(2);
    expect(readdirSync(dir).filter((f) => f.endsWith('.idx')).length).toBe(readdirSync(dir).filter((f) => f.endsWith('.jsonl')).length);
    const pub = createPublicKey(readFileSync(join(dataDir, 'audit-signing-key.pub.pem'), 'utf8'));
    const r = verifyLog(dir, { publicKey: pub });
    expect(r).toMatchObject({ ok: true, pinned: true });
    expect(r.records).toBe(records().length);
    const other = generateKeyPairSync('ed25519').publicKey;
    expect(verifyLog(dir, { publicKey: other }).problem?.reason).toMatch(/not the pinned key/);
  });

  it('detects the edit, deletion or reordering of any record or signature, naming the first bad record', () => {
    const segs = readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();
    let mutations = 0;
    const tamper = (file: string, change: (lines: string[]) => string[] | undefined): ReturnType<typeof verifyLog> | undefined => {
      const copy = mkdtempSync(join(work, 'copy-'));
      cpSync(dir, copy, { recursive: true });
      const path = join(copy, file);
      const lines = readFileSync(path, 'utf8').split('\n').slice(0, -1);
      const changed = change(lines);
      if (changed === undefined) return undefined;
      writeFileSync(path, changed.length === 0 ? '' : `${changed.join('\n')}\n`);
      mutations++;
      const r = verifyLog(copy);
      rmSync(copy, { recursive: true, force: true });
      return r;
    };
    for (const file of segs) {
      const n = readFileSync(join(dir, file), 'utf8').split('\n').length - 1;
      for (let i = 0; i < n; i++) {
        const original = JSON.parse(readFileSync(join(dir, file), 'utf8').split('\n')[i]!) as AuditRecord;
        // Edit: one digit of the record's time.
        const edited = tamper(file, (ls) => {
          const l = ls[i]!;
          ls[i] = l.replace(/("time":"[^"]*\.\d\d)(\d)/, (_, head: string, d: string) => `${head}${(Number(d) + 1) % 10}`);
          return ls;
        })!;
        expect(edited.ok, `edit of ${file}:${i + 1}`).toBe(false);
        expect(edited.problem?.seq, `edit of ${file}:${i + 1} names it`).toBe(original.seq);
        // Deletion.
        const deleted = tamper(file, (ls) => ls.filter((_, j) => j !== i))!;
        expect(deleted.ok, `deletion of ${file}:${i + 1}`).toBe(false);
        // Reordering with the next line.
        const swapped = tamper(file, (ls) => {
          if (i + 1 >= ls.length) return undefined;
          [ls[i], ls[i + 1]] = [ls[i + 1]!, ls[i]!];
          return ls;
        });
        if (swapped) expect(swapped.ok, `swap of ${file}:${i + 1}`).toBe(false);
        // A changed signature.
        if (typeof original.sig === 'string') {
          const badSig = tamper(file, (ls) => {
            ls[i] = ls[i]!.replace(/"sig":"(.)/, (_, c: string) => `"sig":"${c === 'A' ? 'B' : 'A'}`);
            return ls;
          })!;
          expect(badSig.ok).toBe(false);
          expect(badSig.problem?.reason, `signature of ${file}:${i + 1}`).toMatch(/signature/);
          expect(badSig.problem?.seq).toBe(original.seq);
        }
      }
    }
    expect(mutations).toBeGreaterThan(80);
    // Removing whole segments is detected as well: the first, the last (its predecessor's seal says the log went
    // on), or the last two.
    for (const gone of [[segs[0]!], [segs[segs.length - 1]!], segs.slice(-2)]) {
      const copy = mkdtempSync(join(work, 'copy-'));
      cpSync(dir, copy, { recursive: true });
      for (const f of gone) rmSync(join(copy, f));
      expect(verifyLog(copy).problem?.reason, `without ${gone.join(', ')}`).toMatch(/missing/);
    }
  });

  it('`tollgate audit verify` exits 0 on the log and 1 with the first bad record on a tampered copy', async () => {
    const ok = await run(process.execPath, ['bin/tollgate.mjs', 'audit', 'verify', dir, '--key', join(dataDir, 'audit-signing-key.pub.pem')]);
    expect(ok.stdout).toMatch(/OK: \d+ records in \d+ segments, chain intact, all signatures valid \(the pinned key\)/);
    const copy = mkdtempSync(join(work, 'cli-'));
    cpSync(dir, copy, { recursive: true });
    const file = join(copy, 'segment-00000001.jsonl');
    const lines = readFileSync(file, 'utf8').split('\n');
    lines[3] = lines[3]!.replace('"kind":"call"', '"kind":"call","injected":true');
    writeFileSync(file, lines.join('\n'));
    const bad = await run(process.execPath, ['bin/tollgate.mjs', 'audit', 'verify', copy]).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(bad?.code).toBe(1);
    expect(bad?.stderr).toMatch(/first bad record: segment 1 line 4 \(seq 3\)/);
    expect(bad?.stderr).toMatch(/was modified/);
  });

  it('`tollgate audit query` finds calls by tool and time, as JSON lines or a table', async () => {
    const json = await run(process.execPath, ['bin/tollgate.mjs', 'audit', 'query', dir, '--tool', 'fixture__echo', '--since', '1h']);
    const lines = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
    expect(lines).toHaveLength(13);
    expect(lines.every((r) => r.kind === 'call' && r.target?.name === 'fixture__echo')).toBe(true);
    const none = await run(process.execPath, ['bin/tollgate.mjs', 'audit', 'query', dir, '--tool', 'fixture__*', '--until', '2000-01-01T00:00:00Z', '--count']);
    expect(none.stdout.trim()).toBe('0');
    const prefix = await run(process.execPath, ['bin/tollgate.mjs', 'audit', 'query', dir, '--tool', 'fixture__*', '--count']);
    expect(Number(prefix.stdout.trim())).toBe(12 + 3 + 1 + 1);
    const table = await run(process.execPath, ['bin/tollgate.mjs', 'audit', 'query', dir, '--tool', 'fixture__add', '--format', 'table']);
    const rows = table.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^time\s+kind\s+principal\s+operation\s+target/);
    expect(rows).toHaveLength(4);
  });
});
