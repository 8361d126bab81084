/**
 * `tollgate audit verify <dir>` and `tollgate audit query <dir> ...`: checking and searching an audit log offline.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { AuditRecord, RecordKind } from '../audit/format.ts';
import { countLog, parseTime, queryLog, type QueryFilter, type QueryStats } from '../audit/query.ts';
import { verifyLog } from '../audit/verify.ts';

export const AUDIT_USAGE = `Usage:
  tollgate audit verify <dir> [--key PUBLIC.pem] [--allow-open] [--strict] [--json]
      Checks the hash chain and every signature; names the first bad record and why. Exit 0 = intact.
      --key pins the Ed25519 public key (otherwise the key the log names is trusted, and the output says so).
      --allow-open accepts an unsealed last segment (a gateway still writing to it).
      --strict fails on findings too: seals made on recovery (no clean shutdown), a missing tail (TAIL marker).
  tollgate audit query <dir> [--principal ID[*]] [--tool NAME[*]] [--since T] [--until T]
                             [--decision allow|deny] [--outcome O] [--kind call,decision,...]
                             [--limit N] [--format json|table] [--count] [--stats]
      T is ISO 8601, epoch ms, or a duration ago (15m, 2h, 7d). Output: JSON lines (default) or a table.
`;

const KINDS: readonly RecordKind[] = ['call', 'decision', 'open', 'checkpoint', 'seal'];

function out(text: string): Promise<void> {
  return new Promise((done) => {
    if (process.stdout.write(text)) done();
    else process.stdout.once('drain', done);
  });
}

async function verify(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { key: { type: 'string' }, 'allow-open': { type: 'boolean' }, json: { type: 'boolean' }, strict: { type: 'boolean' } },
    allowPositionals: true,
  });
  if (positionals.length !== 1) {
    process.stderr.write(AUDIT_USAGE);
    return 2;
  }
  const dir = resolve(positionals[0]!);
  const publicKey = values.key === undefined ? undefined : createPublicKey(readFileSync(resolve(values.key), 'utf8'));
  const started = performance.now();
  const r = verifyLog(dir, { publicKey, allowOpen: values['allow-open'] ?? false });
  const ms = Math.round(performance.now() - started);
  const findings = r.findings ?? [];
  const failed = !r.ok || (values.strict === true && findings.length > 0);
  if (values.json) {
    await out(`${JSON.stringify({ ...r, ms })}\n`);
    return failed ? 1 : 0;
  }
  if (!r.ok) {
    const p = r.problem!;
    process.stderr.write(`${dir}: TAMPERED or damaged\n  first bad record: segment ${p.segment} line ${p.line}${p.seq === undefined ? '' : ` (seq ${p.seq})`}\n  why: ${p.reason}\n`);
    return 1;
  }
  const trust = r.pinned ? 'the pinned key' : `the key recorded in the log (${r.keys.join(', ')}); pass --key to pin it`;
  let text = `${dir}: OK: ${r.records} records in ${r.segments} segments, chain intact, all signatures valid (${trust}) [${ms} ms]\n`;
  if (r.open) text += `  segment ${r.open.segment} is open; ${r.open.unsignedRecords} records after its last signed checkpoint\n`;
  for (const f of findings) text += `  finding: ${f}\n`;
  if (failed) text += `  ${findings.length} finding(s): failing under --strict\n`;
  await out(text);
  return failed ? 1 : 0;
}

const TABLE_COLUMNS = ['time', 'kind', 'principal', 'operation', 'target', 'decision', 'outcome', 'status', 'ms'] as const;

function cells(rec: AuditRecord): string[] {
  return [
    rec.time,
    rec.kind,
    rec.principal ?? '-',
    rec.operation ?? '-',
    rec.target?.name ?? '-',
    rec.decision === undefined ? '-' : `${rec.decision.allow ? 'allow' : 'deny'}${rec.decision.reason ? ` (${rec.decision.reason})` : ''}`,
    rec.outcome ?? '-',
    rec.status === undefined ? '-' : String(rec.status),
    rec.ms === undefined ? '-' : String(rec.ms),
  ];
}

async function query(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      principal: { type: 'string' },
      tool: { type: 'string' },
      target: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      decision: { type: 'string' },
      outcome: { type: 'string' },
      kind: { type: 'string' },
      limit: { type: 'string' },
      format: { type: 'string', default: 'json' },
      count: { type: 'boolean' },
      stats: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (positionals.length !== 1) {
    process.stderr.write(AUDIT_USAGE);
    return 2;
  }
  if (values.decision !== undefined && values.decision !== 'allow' && values.decision !== 'deny') throw new Error('--decision must be allow or deny');
  if (values.format !== 'json' && values.format !== 'table') throw new Error('--format must be json or table');
  const kinds = values.kind?.split(',').map((k) => k.trim());
  for (const k of kinds ?? []) if (!KINDS.includes(k as RecordKind)) throw new Error(`--kind: unknown kind ${k} (one of ${KINDS.join(', ')})`);
  const limit = values.limit === undefined ? Number.POSITIVE_INFINITY : Number(values.limit);
  if (!(limit >= 0)) throw new Error('--limit must be a number');
  const now = Date.now();
  const stats: QueryStats = { segments: 0, skipped: 0, scanned: 0, candidates: 0, matched: 0 };
  const started = performance.now();
  const dir = resolve(positionals[0]!);
  const filter: QueryFilter = {
    principal: values.principal,
    target: values.tool ?? values.target,
    since: values.since === undefined ? undefined : parseTime(values.since, now),
    until: values.until === undefined ? undefined : parseTime(values.until, now),
    decision: values.decision as 'allow' | 'deny' | undefined,
    outcome: values.outcome,
    kinds: kinds as RecordKind[] | undefined,
  };
  if (values.count) {
    const total = countLog(dir, filter, stats);
    await out(`${Math.min(total, limit)}\n`);
    if (values.stats) process.stderr.write(`${total} records; ${stats.segments} segments (${stats.skipped} skipped by index header) [${Math.round(performance.now() - started)} ms]\n`);
    return 0;
  }
  const results = queryLog(dir, filter, stats);
  let n = 0;
  let chunk = '';
  const rows: string[][] = [];
  for (const line of results) {
    if (n >= limit) break;
    n++;
    if (values.format === 'table') rows.push(cells(JSON.parse(line) as AuditRecord));
    else {
      chunk += `${line}\n`;
      if (chunk.length > 1 << 16) {
        await out(chunk);
        chunk = '';
      }
    }
  }
  if (values.format === 'table') {
    const all = [[...TABLE_COLUMNS], ...rows];
    const widths = TABLE_COLUMNS.map((_, c) => Math.min(60, Math.max(...all.map((r) => r[c]!.length))));
    chunk = all.map((r) => r.map((v, c) => (v.length > widths[c]! ? `${v.slice(0, widths[c]! - 1)}…` : v.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n') + '\n';
  }
  await out(chunk);
  if (values.stats) {
    process.stderr.write(`${n} records; ${stats.segments} segments (${stats.skipped} skipped by index header, ${stats.scanned} searched), ${stats.candidates} candidates read [${Math.round(performance.now() - started)} ms]\n`);
  }
  return 0;
}

/** `tollgate audit <verify|query> ...` */
export async function audit(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'verify') return verify(rest);
  if (sub === 'query') return query(rest);
  process.stderr.write(AUDIT_USAGE);
  return 2;
}
