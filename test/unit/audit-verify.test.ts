/**
 * `audit verify` against every way a log written by the real writer can be tampered with: each check names the first
 * bad record (segment, line, seq) and why, and what an intact chain cannot prove by itself (the tail marker) is
 * reported as a finding. One log of three segments (signed heads, checkpoints and seals) is written once; each case
 * tampers with its own copy.
 */
import { generateKeyPairSync } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lineHash, publicKeyFromRaw, segmentName, type AuditRecord } from '../../src/audit/format.ts';
import { TAIL_FILE } from '../../src/audit/tail.ts';
import { verifyLog } from '../../src/audit/verify.ts';
import { makeCall, openWriter } from '../helpers/audit-calls.ts';

const root = mkdtempSync(join(tmpdir(), 'tollgate-audit-verify-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The pristine log: 3 segments (10 records each at most), a checkpoint every 3 records. */
let pristine: string;
let pristineRoot: string;
const SPEC = { segment: { maxRecords: 10 }, checkpoint: { everyRecords: 3 } };

async function writeCalls(rootDir: string, prefix: string, n: number): Promise<string> {
  const { writer, dir } = await openWriter(rootDir, SPEC);
  for (let i = 0; i < n; i++) {
    writer.enqueue(makeCall({ id: `${prefix}-${i}`, time: Date.now(), tool: 'srv__echo', principal: 'spiffe://example.org/a', allow: true }), 1);
    // A checkpoint is considered once per batch written: wait for each pair to be written.
    if (i % 2 === 1) while (writer.pending > 0) await new Promise((r) => setTimeout(r, 2));
  }
  await writer.close();
  return dir;
}

beforeAll(async () => {
  pristineRoot = join(root, 'pristine');
  pristine = await writeCalls(pristineRoot, 'c', 16);
});

let copies = 0;
/** A fresh copy of the pristine log (and its signing key), to tamper with. */
function copy(): { dir: string; root: string } {
  const to = join(root, `copy-${++copies}`);
  cpSync(pristineRoot, to, { recursive: true });
  return { dir: join(to, 'data', 'audit'), root: to };
}

function segments(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();
}

function lines(dir: string, n: number): string[] {
  return readFileSync(join(dir, segmentName(n)), 'utf8').split('\n').slice(0, -1);
}

function rewrite(dir: string, n: number, edit: (lines: string[]) => string[]): void {
  const out = edit(lines(dir, n));
  writeFileSync(join(dir, segmentName(n)), out.length === 0 ? '' : `${out.join('\n')}\n`);
  // The index is derived data and would be reported first: these cases are about the segment itself.
  rmSync(join(dir, segmentName(n).replace('.jsonl', '.idx')), { force: true });
}

/** Changes one field of a JSON line, keeping its place (its signature, if any, no longer matches). */
function edited(line: string, change: (rec: Record<string, unknown>) => void): string {
  const rec = JSON.parse(line) as Record<string, unknown>;
  change(rec);
  return JSON.stringify(rec);
}

function kindAt(dir: string, n: number, kind: string): number {
  return lines(dir, n).findIndex((l) => (JSON.parse(l) as AuditRecord).kind === kind);
}

describe('audit verify of an intact log', () => {
  it('passes: every segment, record and key counted, the tail marker found', () => {
    const all = segments(pristine).flatMap((_, i) => lines(pristine, i + 1));
    expect(segments(pristine).length).toBe(3);
    const r = verifyLog(pristine);
    expect(r).toEqual({ ok: true, segments: 3, records: all.length, keys: [expect.any(String)], pinned: false, findings: [] });
  });

  it('passes against the pinned key, and names the key when another one is pinned', () => {
    const open = JSON.parse(lines(pristine, 1)[0]!) as AuditRecord;
    expect(verifyLog(pristine, { publicKey: publicKeyFromRaw(open.pub as string) })).toMatchObject({ ok: true, pinned: true });
    const other = generateKeyPairSync('ed25519').publicKey;
    expect(verifyLog(pristine, { publicKey: other })).toMatchObject({
      ok: false,
      pinned: true,
      problem: { segment: 1, line: 1, seq: 0, reason: expect.stringMatching(/^segment 1 is signed with key \S+, not the pinned key \S+$/) },
    });
  });
});

describe('audit verify names the first bad record', () => {
  it('no segment at all', () => {
    const empty = mkdtempSync(join(root, 'empty-'));
    expect(verifyLog(empty)).toMatchObject({ ok: false, segments: 0, records: 0, problem: { segment: 0, line: 0, reason: `no audit segments in ${empty}` } });
  });

  it('the first segment deleted', () => {
    const { dir } = copy();
    unlinkSync(join(dir, segmentName(1)));
    expect(verifyLog(dir).problem).toEqual({ segment: 2, line: 0, seq: undefined, reason: 'segment 1 is missing: the log starts at segment 2 (earlier segments were removed)' });
  });

  it('a middle segment deleted', () => {
    const { dir } = copy();
    unlinkSync(join(dir, segmentName(2)));
    expect(verifyLog(dir).problem).toEqual({ segment: 2, line: 0, seq: undefined, reason: 'segment 2 is missing (deleted)' });
  });

  it('the last segment deleted: the seal before it says the log continued', () => {
    const { dir } = copy();
    const before = lines(dir, 2);
    const seal = JSON.parse(before[before.length - 1]!) as AuditRecord;
    expect(seal).toMatchObject({ kind: 'seal', continued: true });
    unlinkSync(join(dir, segmentName(3)));
    expect(verifyLog(dir).problem).toEqual({ segment: 3, line: 0, seq: seal.seq + 1, reason: "segment 3 is missing: segment 2's seal says the log continued (the log's tail was deleted)" });
  });

  it('an emptied segment', () => {
    const { dir } = copy();
    rewrite(dir, 2, () => []);
    expect(verifyLog(dir).problem).toMatchObject({ segment: 2, line: 0, reason: 'segment 2 is empty' });
  });

  it('a line that is not a record', () => {
    const { dir } = copy();
    rewrite(dir, 2, (l) => [l[0]!, '{"torn":', ...l.slice(2)]);
    expect(verifyLog(dir).problem).toMatchObject({ segment: 2, line: 2, reason: 'line is not a valid audit record (edited or torn)' });
    const { dir: d2 } = copy();
    rewrite(d2, 2, (l) => [l[0]!, '{"seq":"3","prev":"x"}', ...l.slice(2)]);
    expect(verifyLog(d2).problem).toMatchObject({ segment: 2, line: 2, reason: 'line is not a valid audit record (edited or torn)' });
  });

  it('a record removed, and a record duplicated', () => {
    const { dir } = copy();
    const first = JSON.parse(lines(dir, 2)[2]!) as AuditRecord;
    rewrite(dir, 2, (l) => [...l.slice(0, 2), ...l.slice(3)]);
    expect(verifyLog(dir).problem).toEqual({ segment: 2, line: 3, seq: first.seq + 1, reason: `expected seq ${first.seq}, found ${first.seq + 1}: record(s) ${first.seq}..${first.seq} were removed or reordered` });
    const { dir: d2 } = copy();
    rewrite(d2, 2, (l) => [...l.slice(0, 3), l[2]!, ...l.slice(3)]);
    expect(verifyLog(d2).problem).toEqual({ segment: 2, line: 4, seq: first.seq, reason: `expected seq ${first.seq + 1}, found ${first.seq}: records were reordered or duplicated` });
  });

  it('a record edited: named by the record after it, which still holds its original hash', () => {
    const { dir } = copy();
    const rec = JSON.parse(lines(dir, 2)[2]!) as AuditRecord;
    rewrite(dir, 2, (l) => [...l.slice(0, 2), edited(l[2]!, (r) => (r.call = 'forged')), ...l.slice(3)]);
    // What was checked before the failure is counted too: the records up to the broken link, the key that signed them.
    expect(verifyLog(dir)).toMatchObject({ ok: false, segments: 3, records: lines(dir, 1).length + 3, keys: [expect.any(String)], pinned: false });
    expect(verifyLog(dir).problem).toEqual({
      segment: 2,
      line: 3,
      seq: rec.seq,
      reason: `record seq ${rec.seq} was modified: its hash no longer matches the prev hash recorded by seq ${rec.seq + 1} (segment 2 line 4)`,
    });
  });

  it('a record whose own prev hash was edited: named itself', () => {
    const { dir } = copy();
    const rec = JSON.parse(lines(dir, 2)[2]!) as AuditRecord;
    rewrite(dir, 2, (l) => [...l.slice(0, 2), edited(l[2]!, (r) => (r.prev = lineHash('something else'))), ...l.slice(3)]);
    expect(verifyLog(dir).problem).toEqual({
      segment: 2,
      line: 3,
      seq: rec.seq,
      reason: `record seq ${rec.seq} was modified: its prev hash does not match the record before it, and its own hash no longer matches the one the next record holds`,
    });
  });

  it('the last record of the log edited (no next record to tell): the record before it is named', () => {
    const { dir } = copy();
    const last = lines(dir, 3);
    const rec = JSON.parse(last[last.length - 1]!) as AuditRecord;
    rewrite(dir, 3, (l) => [...l.slice(0, -1), edited(l[l.length - 1]!, (r) => (r.prev = lineHash('x')))]);
    expect(verifyLog(dir).problem).toMatchObject({ segment: 3, line: last.length - 1, seq: rec.seq - 1, reason: expect.stringMatching(new RegExp(`^record seq ${rec.seq - 1} was modified`)) });
  });

  it('a segment that does not open with its signed head', () => {
    const { dir } = copy();
    rewrite(dir, 2, (l) => [edited(l[0]!, (r) => (r.kind = 'call')), ...l.slice(1)]);
    expect(verifyLog(dir).problem).toMatchObject({ segment: 2, line: 1, reason: 'segment 2 does not start with its signed open record' });
    const { dir: d2 } = copy();
    rewrite(d2, 2, (l) => [edited(l[0]!, (r) => (r.segment = 3)), ...l.slice(1)]);
    expect(verifyLog(d2).problem).toMatchObject({ segment: 2, line: 1, reason: 'segment 2 does not start with its signed open record' });
  });

  it('a head without a public key, with a broken one, or with a bad signature', () => {
    const { dir } = copy();
    rewrite(dir, 2, (l) => [edited(l[0]!, (r) => delete r.pub), ...l.slice(1)]);
    expect(verifyLog(dir).problem).toMatchObject({ segment: 2, line: 1, reason: 'open record names no public key' });
    const { dir: d2 } = copy();
    rewrite(d2, 2, (l) => [edited(l[0]!, (r) => (r.pub = 'AAAA')), ...l.slice(1)]);
    expect(verifyLog(d2).problem).toMatchObject({ segment: 2, line: 1, reason: 'open record carries an invalid public key' });
    const { dir: d3 } = copy();
    rewrite(d3, 2, (l) => [edited(l[0]!, (r) => (r.extra = 1)), ...l.slice(1)]);
    expect(verifyLog(d3).problem).toMatchObject({ segment: 2, line: 1, reason: 'bad signature on the segment head (open record)' });
  });

  it('a head signed by another key (its own public key swapped in)', () => {
    const { dir } = copy();
    const { publicKey } = generateKeyPairSync('ed25519');
    const raw = (publicKey.export({ format: 'jwk' }) as { x: string }).x;
    rewrite(dir, 2, (l) => [edited(l[0]!, (r) => (r.pub = raw)), ...l.slice(1)]);
    expect(verifyLog(dir).problem).toMatchObject({ segment: 2, line: 1, reason: 'bad signature on the segment head (open record)' });
  });

  it('an open record in the middle of a segment', () => {
    const { dir } = copy();
    rewrite(dir, 2, (l) => [...l.slice(0, 2), edited(l[2]!, (r) => (r.kind = 'open')), ...l.slice(3)]);
    expect(verifyLog(dir).problem).toMatchObject({ segment: 2, line: 3, reason: 'open record in the middle of a segment' });
  });

  it('a checkpoint or seal moved to another segment, or re-signed by nobody', () => {
    const { dir } = copy();
    const cp = kindAt(dir, 2, 'checkpoint');
    expect(cp).toBeGreaterThan(0);
    rewrite(dir, 2, (l) => l.map((x, i) => (i === cp ? edited(x, (r) => (r.segment = 1)) : x)));
    expect(verifyLog(dir).problem).toMatchObject({ segment: 2, line: cp + 1, reason: 'checkpoint names segment 1, found in segment 2' });
    const { dir: d2 } = copy();
    rewrite(d2, 2, (l) => l.map((x, i) => (i === cp ? edited(x, (r) => (r.time = '2020-01-01T00:00:00.000Z')) : x)));
    expect(verifyLog(d2).problem).toMatchObject({ segment: 2, line: cp + 1, reason: 'bad signature on checkpoint record' });
    const { dir: d3 } = copy();
    const seal = lines(d3, 2).length - 1;
    rewrite(d3, 2, (l) => l.map((x, i) => (i === seal ? edited(x, (r) => (r.records = 1)) : x)));
    expect(verifyLog(d3).problem).toMatchObject({ segment: 2, line: seal + 1, reason: 'bad signature on seal record' });
  });

  it('a record appended after a seal', () => {
    const { dir } = copy();
    rewrite(dir, 2, (l) => [...l, l[1]!]);
    expect(verifyLog(dir).problem).toMatchObject({ segment: 2, line: lines(dir, 2).length, reason: "record after the segment's seal (records were appended or moved after sealing)" });
  });

  it('a seal removed: in the middle of the log, and at its end (allowed only for a live log)', () => {
    const { dir } = copy();
    const n2 = lines(dir, 2).length;
    rewrite(dir, 2, (l) => l.slice(0, -1));
    expect(verifyLog(dir).problem).toMatchObject({ segment: 2, line: n2 - 1, reason: 'segment 2 is not sealed but later segments exist (its seal was removed)' });

    const { dir: d2 } = copy();
    const last = lines(d2, 3);
    const cp = last.map((l) => (JSON.parse(l) as AuditRecord).kind).lastIndexOf('checkpoint', last.length - 2);
    rewrite(d2, 3, (l) => l.slice(0, -1));
    const after = last.length - 2 - Math.max(cp, 0);
    expect(verifyLog(d2).problem).toMatchObject({
      segment: 3,
      line: last.length - 1,
      reason: `segment 3 is not sealed: the gateway is running or crashed, or the log's tail was cut (${after} records after the last signature; use --allow-open for a live log)`,
    });
    const live = verifyLog(d2, { allowOpen: true });
    expect(live).toMatchObject({ ok: true, segments: 3, open: { segment: 3, unsignedRecords: after } });
    // The marker names the removed seal: the end of the log is missing.
    expect(live.findings).toEqual([expect.stringMatching(/^the log's tail is missing: TAIL \(signed\) names seq \d+, the log ends at seq \d+/)]);
  });
});

describe('audit verify findings: what the tail marker says about the end of the log', () => {
  it('no marker: reported, the chain still verifies', () => {
    const { dir } = copy();
    unlinkSync(join(dir, TAIL_FILE));
    expect(verifyLog(dir)).toMatchObject({ ok: true, findings: [expect.stringMatching(/^no TAIL marker/)] });
  });

  it('a marker that is not signed by the log key', () => {
    const { dir } = copy();
    writeFileSync(join(dir, TAIL_FILE), `${edited(readFileSync(join(dir, TAIL_FILE), 'utf8').trim(), (r) => (r.seq = 10_000))}\n`);
    expect(verifyLog(dir).findings).toEqual(['the TAIL marker is not a line signed by the log\'s key (altered or replaced)']);
    const { dir: d2 } = copy();
    writeFileSync(join(d2, TAIL_FILE), 'not json\n');
    expect(verifyLog(d2).findings).toEqual(['the TAIL marker is not a line signed by the log\'s key (altered or replaced)']);
  });

  it('a marker from a later state of the log: its end was deleted, or it was rewritten from that point', async () => {
    // Two continuations of the same log (same key): a short one and a long one.
    const { dir: short, root: shortRoot } = copy();
    const { dir: long, root: longRoot } = copy();
    await writeCalls(shortRoot, 'short', 2);
    await writeCalls(longRoot, 'long', 12);
    const shortTail = readFileSync(join(short, TAIL_FILE), 'utf8');
    const longTail = readFileSync(join(long, TAIL_FILE), 'utf8');
    expect(verifyLog(short).findings).toEqual([]);
    expect(verifyLog(long).findings).toEqual([]);
    // The pristine log with the long run's marker: the records it names were deleted.
    const { dir: cut } = copy();
    writeFileSync(join(cut, TAIL_FILE), longTail);
    const lastSeq = verifyLog(cut).records - 1;
    const tailSeq = (JSON.parse(longTail) as AuditRecord).seq;
    expect(verifyLog(cut).findings).toEqual([`the log's tail is missing: TAIL (signed) names seq ${tailSeq}, the log ends at seq ${lastSeq} (records or segments were deleted)`]);
    // The long run with the short run's marker: another line stands where it names.
    writeFileSync(join(long, TAIL_FILE), shortTail);
    expect(verifyLog(long).findings).toEqual([`the TAIL marker names seq ${(JSON.parse(shortTail) as AuditRecord).seq}, but the log holds another line there (the log was rewritten from that point)`]);
  });
});
