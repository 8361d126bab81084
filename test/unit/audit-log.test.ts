/**
 * The audit writer, verify and query on real files: queries agree with a brute-force filter over what was written
 * (sealed segments through their index, the open one by scanning), argument redaction follows config and policy
 * obligations, list-filtering decisions get their own records, back-pressure bounds the buffer, and a log left open
 * by a crash (with a torn last line) is sealed and continued on the next start.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { noteDecision } from '../../src/audit/decisions.ts';
import type { AuditRecord } from '../../src/audit/format.ts';
import { parseTime, queryLog, type QueryFilter } from '../../src/audit/query.ts';
import { verifyLog } from '../../src/audit/verify.ts';
import { GatewayError } from '../../src/core/errors.ts';
import { makeCall, openWriter, type CallSpec } from '../helpers/audit-calls.ts';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'tollgate-audit-unit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const T0 = Date.parse('2026-11-20T00:00:00Z');
const PRINCIPALS = Array.from({ length: 9 }, (_, i) => `spiffe://example.org/ns/team-${i % 3}/sa/agent-${i}`);
const TOOLS = ['files__read', 'files__write', 'sql__query', 'web__fetch', 'web__search'];

function specs(n: number): CallSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `c-${i}`,
    time: T0 + ((i * 7919) % n) * 36_000, // spread over ~10 h, not in write order
    principal: i % 11 === 0 ? undefined : PRINCIPALS[i % PRINCIPALS.length],
    tool: i % 13 === 0 ? undefined : TOOLS[(i * 3) % TOOLS.length],
    allow: i % 5 === 0 ? undefined : i % 4 !== 0,
    outcome: i % 17 === 0 ? 'upstream_error' : undefined,
    args: { n: i },
  }));
}

function expected(all: readonly CallSpec[], f: QueryFilter): string[] {
  const match = (pattern: string | undefined, v: string | undefined): boolean =>
    pattern === undefined || (v !== undefined && (pattern.endsWith('*') ? v.startsWith(pattern.slice(0, -1)) : v === pattern));
  return all
    .filter((s) => {
      const outcome = s.outcome ?? (s.allow === false ? 'denied' : 'ok');
      return (
        match(f.principal, s.principal) &&
        match(f.target, s.tool) &&
        (f.since === undefined || s.time >= f.since) &&
        (f.until === undefined || s.time < f.until) &&
        (f.decision === undefined || (s.allow !== undefined && s.allow === (f.decision === 'allow'))) &&
        (f.outcome === undefined || outcome === f.outcome)
      );
    })
    .map((s) => s.id)
    .sort();
}

const FILTERS: QueryFilter[] = [
  {},
  { principal: PRINCIPALS[4] },
  { principal: 'spiffe://example.org/ns/team-1/*' },
  { principal: 'spiffe://example.org/ns/nobody' },
  { target: 'sql__query' },
  { target: 'web__*' },
  { decision: 'deny' },
  { decision: 'allow', target: 'files__write' },
  { since: T0 + 3 * 3_600_000, until: T0 + 5 * 3_600_000 },
  { since: T0 + 2 * 3_600_000, until: T0 + 9 * 3_600_000, principal: PRINCIPALS[2], decision: 'deny' },
  { outcome: 'upstream_error' },
  { until: T0 - 1 },
];

describe('audit writer + query', () => {
  it('answers every filter exactly like a brute-force scan, from indexes and from the open segment', async () => {
    const { writer, dir } = await openWriter(join(root, 'query'), { segment: { maxRecords: 97 }, checkpoint: { everyRecords: 40 } });
    const all = specs(1500);
    for (const s of all) writer.enqueue(makeCall(s), 1.5);
    while (writer.pending > 0) await new Promise((r) => setTimeout(r, 5));
    const ids = (f: QueryFilter): string[] => [...queryLog(dir, f)].map((l) => (JSON.parse(l) as AuditRecord).call!).sort();
    // The log is live: the last segment is open and has no index yet.
    expect(verifyLog(dir).ok).toBe(false);
    expect(verifyLog(dir, { allowOpen: true }).ok).toBe(true);
    for (const f of FILTERS) expect(ids(f), JSON.stringify(f)).toEqual(expected(all, f));
    await writer.close();
    expect(verifyLog(dir)).toMatchObject({ ok: true });
    for (const f of FILTERS) expect(ids(f), JSON.stringify(f)).toEqual(expected(all, f));
    const stats = { segments: 0, skipped: 0, scanned: 0, candidates: 0, matched: 0 };
    [...queryLog(dir, { principal: 'spiffe://example.org/ns/nobody' }, stats)];
    expect(stats.skipped).toBe(stats.segments); // an unknown principal is ruled out by index headers alone
  });

  it('writes one decision record per list-filtering decision, besides the call record', async () => {
    const { writer, dir } = await openWriter(join(root, 'decisions'));
    const call = makeCall({ id: 'list-1', time: Date.now(), principal: PRINCIPALS[0], operation: 'tools/list', allow: true });
    noteDecision(call, { id: 'd-a', allow: true }, { kind: 'tool', name: 'files__read', server: 'files' });
    noteDecision(call, { id: 'd-b', allow: false, reason: 'not for this agent' }, { kind: 'tool', name: 'sql__query', server: 'sql' });
    writer.enqueue(call, 2);
    await writer.close();
    const recs = [...queryLog(dir, { kinds: ['call', 'decision'] })].map((l) => JSON.parse(l) as AuditRecord);
    expect(recs.map((r) => [r.kind, r.target?.name, r.decision?.allow])).toEqual([
      ['decision', 'files__read', true],
      ['decision', 'sql__query', false],
      ['call', undefined, true],
    ]);
    expect(recs.every((r) => r.call === 'list-1')).toBe(true);
    expect([...queryLog(dir, { decision: 'deny' })].map((l) => (JSON.parse(l) as AuditRecord).decision?.id)).toEqual(['d-b']);
  });

  it('redacts arguments by name, by policy obligation, wholesale, and bounds their size', async () => {
    const { writer, dir } = await openWriter(join(root, 'redact'), { arguments: { maxBytes: 200 } });
    const base = { time: Date.now(), principal: PRINCIPALS[0], tool: 'files__write' };
    writer.enqueue(makeCall({ ...base, id: 'r1', args: { path: '/a', apiKey: 'k', nested: { password: 'p', ok: 1 } } }), 1);
    writer.enqueue(makeCall({ ...base, id: 'r2', allow: true, obligations: { redact: ['/content', 'meta.owner'] }, args: { path: '/b', content: 'secret text', meta: { owner: 'x', size: 3 } } }), 1);
    writer.enqueue(makeCall({ ...base, id: 'r3', allow: true, obligations: { audit: { redact: true } }, args: { path: '/c', content: 'c' } }), 1);
    writer.enqueue(makeCall({ ...base, id: 'r4', args: { content: 'x'.repeat(1000) } }), 1);
    await writer.close();
    const byId = new Map([...queryLog(dir, {})].map((l) => [(JSON.parse(l) as AuditRecord).call, JSON.parse(l) as AuditRecord]));
    expect(byId.get('r1')!.args).toEqual({ path: '/a', apiKey: '[REDACTED]', nested: { password: '[REDACTED]', ok: 1 } });
    expect(byId.get('r2')!.args).toEqual({ path: '/b', content: '[REDACTED]', meta: { owner: '[REDACTED]', size: 3 } });
    expect(byId.get('r3')!.args).toEqual({ path: '[REDACTED]', content: '[REDACTED]' });
    expect(byId.get('r4')!.args).toMatchObject({ truncated: true, bytes: 1014 });
    expect((byId.get('r4')!.args as { sha256: string }).sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('bounds the buffer: `fail` refuses with TG_AUDIT_UNAVAILABLE, `block` waits for room', async () => {
    for (const onFull of ['fail', 'block'] as const) {
      const { writer } = await openWriter(join(root, `bp-${onFull}`), { buffer: { maxRecords: 16, onFull } });
      expect(writer.admit()).toBeUndefined();
      for (let i = 0; i < 16; i++) writer.enqueue(makeCall({ id: `${onFull}-${i}`, time: Date.now() }), 1);
      if (onFull === 'fail') {
        let err: unknown;
        try {
          writer.admit();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(GatewayError);
        expect((err as GatewayError).code).toBe('TG_AUDIT_UNAVAILABLE');
      } else {
        const waiting = writer.admit();
        expect(waiting).toBeInstanceOf(Promise);
        await waiting; // resolves once the writer made room
        expect(writer.pending).toBeLessThan(16);
      }
      while (writer.pending > 0) await new Promise((r) => setTimeout(r, 5));
      expect(writer.admit()).toBeUndefined();
      await writer.close();
    }
  });

  it('seals a segment a crash left open (cutting its torn line) and continues the chain', async () => {
    const dir = join(root, 'crash');
    await run(process.execPath, ['test/helpers/audit-crash.ts', dir, '50']).catch((err: { signal?: string }) => {
      if (err.signal !== 'SIGKILL') throw err;
    });
    const { writer, dir: logDir } = await openWriter(dir);
    writer.enqueue(makeCall({ id: 'after-crash', time: Date.now(), tool: 'srv__echo' }), 1);
    await writer.close();
    const verified = verifyLog(logDir);
    expect(verified).toMatchObject({ ok: true });
    // An intact chain, but the operator is told the segment was sealed on recovery, not at shutdown.
    expect(verified.findings?.filter((f) => /^segment \d+ was sealed on recovery at the next start, not at shutdown .*; \d+ torn bytes cut\)$/.test(f))).toHaveLength(1);
    const ids = [...queryLog(logDir, {})].map((l) => (JSON.parse(l) as AuditRecord).call);
    expect(ids).toEqual([...Array.from({ length: 50 }, (_, i) => `crash-${i}`), 'after-crash']);
    const seals = [...queryLog(logDir, { kinds: ['seal'] })].map((l) => JSON.parse(l) as AuditRecord);
    expect(seals.some((s) => s.recovered === true && (s.truncatedBytes as number) > 0)).toBe(true);
    expect(readFileSync(join(logDir, 'segment-00000001.jsonl'), 'utf8')).not.toContain('"seq":999999');
  });

  it('refuses a second writer on the same directory', async () => {
    const { writer } = await openWriter(join(root, 'lock'));
    await expect(openWriter(join(root, 'lock'))).rejects.toThrow(/already open/);
    await writer.close();
  });

  it('parses times: ISO, epoch ms and durations ago', () => {
    const now = Date.parse('2026-11-25T12:00:00Z');
    expect(parseTime('2026-11-25T11:00:00Z', now)).toBe(now - 3_600_000);
    expect(parseTime('15m', now)).toBe(now - 900_000);
    expect(parseTime('7d', now)).toBe(now - 7 * 86_400_000);
    expect(parseTime(String(now), now)).toBe(now);
    expect(() => parseTime('yesterday', now)).toThrow(/not a time/);
  });
});

describe('audit index', () => {
  it('counts from the index what a full query returns, and verify rejects an altered index', async () => {
    const { countLog } = await import('../../src/audit/query.ts');
    const { writer, dir } = await openWriter(join(root, 'count'), { segment: { maxRecords: 50 } });
    const all = specs(400);
    for (const s of all) writer.enqueue(makeCall(s), 1);
    await writer.close();
    for (const f of FILTERS) expect(countLog(dir, f), JSON.stringify(f)).toBe(expected(all, f).length);
    expect(verifyLog(dir).ok).toBe(true);
    const { readFileSync: read, writeFileSync: write } = await import('node:fs');
    const idx = join(dir, 'segment-00000002.idx');
    const bytes = read(idx);
    bytes[bytes.length - 9] = bytes[bytes.length - 9]! ^ 1;
    write(idx, bytes);
    expect(verifyLog(dir).problem?.reason).toMatch(/index segment-00000002.idx does not match/);
  });
});

describe('audit index time column', () => {
  it('handles segments whose records span more than 49 days (a 64-bit time column)', async () => {
    const { writer, dir } = await openWriter(join(root, 'wide'));
    const all: CallSpec[] = [0, 10, 60, 90].map((d, i) => ({ id: `w-${i}`, time: T0 + d * 86_400_000, principal: PRINCIPALS[0], tool: TOOLS[0] }));
    for (const s of all) writer.enqueue(makeCall(s), 1);
    await writer.close();
    const f = { since: T0 + 50 * 86_400_000, until: T0 + 80 * 86_400_000 };
    expect([...queryLog(dir, f)].map((l) => (JSON.parse(l) as AuditRecord).call)).toEqual(['w-2']);
    expect(verifyLog(dir).ok).toBe(true);
  });
});
