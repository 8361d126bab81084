/**
 * The binary index of a sealed segment, so a query reads a few columns instead of parsing every line.
 *
 * Layout: `TGAIDX03`, a u32 header length, the JSON header (time ranges, record count, the segment's principal and
 * target dictionaries, column offsets), then 8-byte aligned columns, one entry per record in file order:
 *   time (ms since header.minTime: u32, or f64 when the segment spans more than 49 days), principal (u32 dictionary code + 1, 0 = none), target (u32, same),
 *   flags (u8: kind | decision bits), outcome (u8), offset (u32 byte offset of the line), length (u32 without '\n'),
 *   trace (u32: the first 32 bits of the trace id, 0 = none; a key to narrow a search by trace, collisions are
 *   re-checked on the line), tokens (u32: input + output tokens), cost (f32: the call's cost).
 * The last three (added in v3) let the console join a task's chain by trace id and chart usage from columns alone;
 * a v3 index also carries a rollup of the call records (per-minute and per-principal totals, JSON after the columns,
 * located by the header and read only by usage queries), so usage over whole segments needs no column at all. A v2 index (without them) is still read; searches that need them scan its segment.
 * The segment's principal dictionary doubles as the first filter: a segment that never saw a principal is skipped
 * after reading its header alone. The index is derived data (not signed): query re-checks every matched line itself.
 */
import { closeSync, openSync, readSync, writeFileSync, renameSync } from 'node:fs';

const MAGIC = 'TGAIDX03';
const MAGIC_V2 = 'TGAIDX02';

export interface IndexHeader {
  readonly segment: number;
  readonly count: number;
  readonly minTime: number;
  readonly maxTime: number;
  /** Time range of the call and decision records alone (the signed records carry the time they were written). */
  readonly recordMinTime: number;
  readonly recordMaxTime: number;
  /** Bytes per entry of the time column. */
  readonly timeWidth: 4 | 8;
  readonly dataBytes: number;
  readonly principals: readonly string[];
  readonly targets: readonly string[];
  /** Absolute byte offsets of each column in the file. */
  readonly columns: Readonly<Record<ColumnName, number>>;
  /** Where the rollup's JSON lies (v3; absent in older indexes): read by IndexReader.rollup(). */
  readonly rollup?: { readonly at: number; readonly bytes: number };
}

/** Totals of call records: [calls, denied, tokens, cost] (cost: the sum of the f32 column's values). */
export type Totals = [number, number, number, number];

export interface Rollup {
  /** Width of a slice; slices start at multiples of it since the epoch. */
  readonly sliceMs: number;
  /** [slice number (time / sliceMs), ...totals], ascending; absent when the segment has too many slices. */
  readonly slices?: ReadonlyArray<[number, number, number, number, number]>;
  /** Totals per principal dictionary code - 1 (same order as `principals`); [calls, denied, tokens, cost]. */
  readonly principals: readonly Totals[];
  /** Totals of call records without a principal. */
  readonly anonymous: Totals;
}

export const ROLLUP_SLICE_MS = 60_000;
const MAX_SLICES = 4096;

export type ColumnName = 'time' | 'principal' | 'target' | 'flags' | 'outcome' | 'offset' | 'length' | 'trace' | 'tokens' | 'cost';
const WIDTH: Readonly<Record<ColumnName, 1 | 4 | 8>> = { time: 4, principal: 4, target: 4, flags: 1, outcome: 1, offset: 4, length: 4, trace: 4, tokens: 4, cost: 4 };
const ORDER: readonly ColumnName[] = ['time', 'principal', 'target', 'flags', 'outcome', 'offset', 'length', 'trace', 'tokens', 'cost'];

/** Index columns beyond the v2 set: what the console's chain and usage views read. */
export interface IndexExtra {
  /** traceKey() of the record's trace id (0: none). */
  readonly trace: number;
  readonly tokens: number;
  readonly cost: number;
}
export const NO_EXTRA: IndexExtra = Object.freeze({ trace: 0, tokens: 0, cost: 0 });

/** The trace column's key of a trace id: its first 32 bits (trace ids are random), never 0 for a present id. */
export function traceKey(trace: string | undefined): number {
  if (trace === undefined || trace.length < 8) return 0;
  const v = Number.parseInt(trace.slice(0, 8), 16);
  return Number.isNaN(v) ? 0 : v === 0 ? 1 : v >>> 0;
}

/** Accumulates a segment's index while it is written (or rebuilt by scanning). */
export class IndexBuilder {
  readonly segment: number;
  private readonly times: number[] = [];
  private readonly principal: number[] = [];
  private readonly target: number[] = [];
  private readonly flags: number[] = [];
  private readonly outcome: number[] = [];
  private readonly offset: number[] = [];
  private readonly length: number[] = [];
  private readonly trace: number[] = [];
  private readonly tokens: number[] = [];
  private readonly cost: number[] = [];
  private readonly principals = new Map<string, number>();
  private readonly targets = new Map<string, number>();
  private minTime = Number.POSITIVE_INFINITY;
  private maxTime = Number.NEGATIVE_INFINITY;
  private recordMinTime = Number.POSITIVE_INFINITY;
  private recordMaxTime = Number.NEGATIVE_INFINITY;
  bytes = 0;

  constructor(segment: number) {
    this.segment = segment;
  }

  get count(): number {
    return this.times.length;
  }

  /** Adds the next line (`length` bytes without its newline). */
  add(timeMs: number, principal: string | undefined, target: string | undefined, flags: number, outcome: number, length: number, extra: IndexExtra = NO_EXTRA): void {
    this.times.push(timeMs);
    if (timeMs < this.minTime) this.minTime = timeMs;
    if (timeMs > this.maxTime) this.maxTime = timeMs;
    const kind = flags & 7;
    if (kind === 1 || kind === 2) {
      if (timeMs < this.recordMinTime) this.recordMinTime = timeMs;
      if (timeMs > this.recordMaxTime) this.recordMaxTime = timeMs;
    }
    const pcode = code(this.principals, principal);
    this.principal.push(pcode);
    if (kind === 1) this.roll(timeMs, pcode, (flags & 0x30) === 0x20, extra);
    this.target.push(code(this.targets, target));
    this.flags.push(flags);
    this.outcome.push(outcome);
    this.offset.push(this.bytes);
    this.length.push(length);
    this.trace.push(extra.trace);
    this.tokens.push(Math.min(0xffffffff, Math.max(0, Math.round(extra.tokens))));
    this.cost.push(extra.cost);
    this.bytes += length + 1;
  }

  private readonly slices = new Map<number, Totals>();
  private readonly byPrincipal: Totals[] = [];
  private readonly anonymous: Totals = [0, 0, 0, 0];

  private roll(timeMs: number, pcode: number, denied: boolean, extra: IndexExtra): void {
    const tokens = Math.min(0xffffffff, Math.max(0, Math.round(extra.tokens)));
    const cost = Math.fround(extra.cost);
    const slice = Math.floor(timeMs / ROLLUP_SLICE_MS);
    let t = this.slices.get(slice);
    if (t === undefined) this.slices.set(slice, (t = [0, 0, 0, 0]));
    addTotals(t, denied, tokens, cost);
    let p = pcode === 0 ? this.anonymous : this.byPrincipal[pcode - 1];
    if (p === undefined) this.byPrincipal[pcode - 1] = p = [0, 0, 0, 0];
    addTotals(p, denied, tokens, cost);
  }

  private rollup(): Rollup {
    const principals: Totals[] = [];
    for (let i = 0; i < this.principals.size; i++) principals.push(this.byPrincipal[i] ?? [0, 0, 0, 0]);
    const slices = this.slices.size > MAX_SLICES ? undefined : [...this.slices.entries()].sort((a, b) => a[0] - b[0]).map(([k, t]) => [k, ...t] as [number, number, number, number, number]);
    return { sliceMs: ROLLUP_SLICE_MS, ...(slices ? { slices } : {}), principals, anonymous: this.anonymous };
  }

  /** Writes the index next to the segment (atomically: temp file + rename). */
  write(path: string): void {
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, this.toBuffer());
    renameSync(tmp, path);
  }

  /** The index file's bytes. */
  toBuffer(): Buffer {
    const count = this.count;
    const minTime = count === 0 ? 0 : this.minTime;
    const maxTime = count === 0 ? 0 : this.maxTime;
    const timeWidth: 4 | 8 = maxTime - minTime > 0xffffffff ? 8 : 4;
    const hasRecords = this.recordMinTime <= this.recordMaxTime;
    const cols = {
      time: timeWidth === 4 ? Uint32Array.from(this.times, (t) => t - minTime) : Float64Array.from(this.times, (t) => t - minTime),
      principal: Uint32Array.from(this.principal),
      target: Uint32Array.from(this.target),
      flags: Uint8Array.from(this.flags),
      outcome: Uint8Array.from(this.outcome),
      offset: Uint32Array.from(this.offset),
      length: Uint32Array.from(this.length),
      trace: Uint32Array.from(this.trace),
      tokens: Uint32Array.from(this.tokens),
      cost: Float32Array.from(this.cost),
    };
    const rollupJson = JSON.stringify(this.rollup());
    const rollupBytes = Buffer.byteLength(rollupJson);
    // Column offsets depend on the header's length, which contains them: fix the point by iterating.
    let headerLen = 0;
    let header = '';
    for (let pass = 0; pass < 4; pass++) {
      let at = align(8 + 4 + headerLen);
      const columns = {} as Record<ColumnName, number>;
      for (const c of ORDER) {
        columns[c] = at;
        at = align(at + count * (c === 'time' ? timeWidth : WIDTH[c]));
      }
      header = JSON.stringify({
        segment: this.segment,
        count,
        minTime,
        maxTime,
        recordMinTime: hasRecords ? this.recordMinTime : 0,
        recordMaxTime: hasRecords ? this.recordMaxTime : -1,
        timeWidth,
        dataBytes: this.bytes,
        principals: [...this.principals.keys()],
        targets: [...this.targets.keys()],
        columns,
        rollup: { at, bytes: rollupBytes },
      } satisfies IndexHeader);
      const len = Buffer.byteLength(header);
      if (len === headerLen) break;
      headerLen = len;
    }
    const parsed = JSON.parse(header) as IndexHeader;
    const total = align(parsed.rollup!.at + rollupBytes);
    const buf = Buffer.alloc(total);
    buf.write(MAGIC, 0, 'latin1');
    buf.writeUInt32LE(headerLen, 8);
    buf.write(header, 12, 'utf8');
    buf.write(rollupJson, parsed.rollup!.at, 'utf8');
    for (const c of ORDER) {
      const col = cols[c];
      Buffer.from(col.buffer, col.byteOffset, col.byteLength).copy(buf, parsed.columns[c]);
    }
    return buf;
  }
}

function code(dict: Map<string, number>, value: string | undefined): number {
  if (value === undefined) return 0;
  let c = dict.get(value);
  if (c === undefined) {
    c = dict.size + 1;
    dict.set(value, c);
  }
  return c;
}

function addTotals(t: Totals, denied: boolean, tokens: number, cost: number): void {
  t[0]++;
  if (denied) t[1]++;
  t[2] += tokens;
  t[3] += cost;
}

function align(n: number): number {
  return (n + 7) & ~7;
}

/** An opened index file: header parsed, columns read on demand. */
export class IndexReader {
  readonly header: IndexHeader;
  /** False for a v2 index (no trace, tokens or cost column). */
  readonly extended: boolean;
  private readonly fd: number;

  private constructor(fd: number, header: IndexHeader, extended: boolean) {
    this.fd = fd;
    this.header = header;
    this.extended = extended;
  }

  static open(path: string): IndexReader | undefined {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return undefined;
    }
    try {
      const head = Buffer.alloc(12);
      const magic = readSync(fd, head, 0, 12, 0) === 12 ? head.toString('latin1', 0, 8) : '';
      if (magic !== MAGIC && magic !== MAGIC_V2) throw new Error('bad magic');
      const len = head.readUInt32LE(8);
      const hb = Buffer.alloc(len);
      if (readSync(fd, hb, 0, len, 12) !== len) throw new Error('short header');
      return new IndexReader(fd, JSON.parse(hb.toString('utf8')) as IndexHeader, magic === MAGIC);
    } catch {
      closeSync(fd);
      return undefined;
    }
  }

  private read(c: ColumnName): ArrayBuffer {
    const bytes = this.header.count * (c === 'time' ? this.header.timeWidth : WIDTH[c]);
    const ab = new ArrayBuffer(bytes);
    if (bytes > 0) readSync(this.fd, new Uint8Array(ab), 0, bytes, this.header.columns[c]);
    return ab;
  }

  u32(c: 'principal' | 'target' | 'offset' | 'length' | 'trace' | 'tokens'): Uint32Array {
    return new Uint32Array(this.read(c));
  }

  /** The usage rollup of the call records (undefined for an index that has none or a damaged one). */
  rollup(): Rollup | undefined {
    const r = this.header.rollup;
    if (r === undefined) return undefined;
    const b = Buffer.alloc(r.bytes);
    if (readSync(this.fd, b, 0, r.bytes, r.at) !== r.bytes) return undefined;
    try {
      return JSON.parse(b.toString('utf8')) as Rollup;
    } catch {
      return undefined;
    }
  }

  f32(c: 'cost'): Float32Array {
    return new Float32Array(this.read(c));
  }

  /** Times relative to header.minTime. */
  times(): Uint32Array | Float64Array {
    const ab = this.read('time');
    return this.header.timeWidth === 8 ? new Float64Array(ab) : new Uint32Array(ab);
  }

  u8(c: 'flags' | 'outcome'): Uint8Array {
    return new Uint8Array(this.read(c));
  }

  close(): void {
    closeSync(this.fd);
  }
}
