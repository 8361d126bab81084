/**
 * The audit directory at start-up: one writer per directory (a lock file naming the process; a second writer
 * would fork the chain), and crash recovery (the chain continues after the last segment; a segment a crash left
 * open is sealed, signing what it holds, its torn last line cut). Also the segment listing and index rebuilding
 * that verify and query share.
 */
import { appendFileSync, existsSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../telemetry/logger.ts';
import { GENESIS, KIND_CODE, SEGMENT_RE, indexFieldsOf, indexName, lineHash, segmentName, signLine, type AuditRecord } from './format.ts';
import type { SigningKey } from './keys.ts';
import { IndexBuilder, NO_EXTRA } from './segindex.ts';

/** Directories this process writes to (a second writer would fork the chain). */
const openDirs = new Set<string>();

/** Takes the directory's lock; throws when this process or another live one holds it. */
export function lockDir(dir: string): void {
  if (openDirs.has(dir)) throw new Error(`audit log ${dir} is already open in this process`);
  const path = join(dir, 'LOCK');
  try {
    writeFileSync(path, String(process.pid), { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const pid = Number(readFileSync(path, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new Error(`audit log ${dir} is in use by process ${pid}: two gateways cannot share an audit dir (set spec.dataDir or spec.audit.dir)`);
    }
    writeFileSync(path, String(process.pid));
  }
  openDirs.add(dir);
}

export function unlockDir(dir: string): void {
  openDirs.delete(dir);
  rmSync(join(dir, 'LOCK'), { force: true });
}

/** Where the chain continues: the last segment, the next sequence number and the hash of the last line. */
export interface ChainHead {
  readonly segment: number;
  readonly seq: number;
  readonly prev: string;
}

/** Continues the chain after the last segment; seals a segment a crash left open (signing what it holds). */
export function recoverChain(dir: string, key: SigningKey, log: Logger): ChainHead {
  const segments = listSegments(dir);
  while (segments.length > 0) {
    const n = segments[segments.length - 1]!;
    const path = join(dir, segmentName(n));
    let text = readFileSync(path, 'utf8');
    let truncated = 0;
    if (!text.endsWith('\n')) {
      // A line torn by a crash was never acknowledged as written: cut it, and say so in the seal.
      const keep = text.lastIndexOf('\n') + 1;
      truncated = Buffer.byteLength(text) - Buffer.byteLength(text.slice(0, keep));
      text = text.slice(0, keep);
      truncateSync(path, Buffer.byteLength(text));
    }
    const lines = text === '' ? [] : text.slice(0, -1).split('\n');
    if (lines.length === 0) {
      rmSync(path);
      segments.pop();
      continue;
    }
    const last = JSON.parse(lines[lines.length - 1]!) as AuditRecord;
    let seq = last.seq + 1;
    let prev = lineHash(lines[lines.length - 1]!);
    if (last.kind !== 'seal' || !existsSync(join(dir, indexName(n)))) {
      const builder = rebuildIndex(n, lines);
      if (last.kind !== 'seal') {
        const now = Date.now();
        const json = JSON.stringify({ seq, prev, kind: 'seal', time: new Date(now).toISOString(), segment: n, records: builder.count, recovered: true, ...(truncated > 0 ? { truncatedBytes: truncated } : {}) });
        const line = signLine(json, key.privateKey);
        appendFileSync(path, `${line}\n`);
        builder.add(now, undefined, undefined, KIND_CODE.seal, 0, Buffer.byteLength(line));
        prev = lineHash(line);
        seq++;
        log.warn({ segment: n, records: builder.count, truncatedBytes: truncated }, 'audit segment left open by a previous run sealed');
      }
      builder.write(join(dir, indexName(n)));
    }
    return { segment: n, seq, prev };
  }
  return { segment: 0, seq: 0, prev: GENESIS };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Segment numbers present in a log directory, ascending. */
export function listSegments(dir: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync(dir)) {
    const m = SEGMENT_RE.exec(name);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

/** Builds a segment's index from its lines (crash recovery, or a missing index). */
export function rebuildIndex(n: number, lines: readonly string[]): IndexBuilder {
  const b = new IndexBuilder(n);
  for (const line of lines) {
    let f: ReturnType<typeof indexFieldsOf> = { timeMs: 0, principal: undefined, target: undefined, flags: 0, outcome: 0, extra: NO_EXTRA };
    try {
      f = indexFieldsOf(JSON.parse(line) as AuditRecord);
    } catch {
      // A line that does not parse is indexed as nothing; verify reports it.
    }
    b.add(f.timeMs, f.principal, f.target, f.flags, f.outcome, Buffer.byteLength(line), f.extra);
  }
  return b;
}
