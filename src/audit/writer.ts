/**
 * The audit writer: takes settled calls from the audit guard, and in the background turns them into chained records,
 * appends them to the current segment, signs checkpoints and segment heads/seals, rotates segments and writes their
 * indexes. The request path only pushes the Call on a queue (no serialisation, no hashing, no I/O).
 *
 * Nothing accepted is ever dropped: a failed write is retried (the segment is truncated back to its last good size
 * first) until it succeeds, and while the disk is stuck the queue grows to its bound, where `admit()` makes new calls
 * wait or refuses them (TG_AUDIT_UNAVAILABLE). `close()` writes everything, seals the segment and syncs it.
 */
import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Call } from '../core/call.ts';
import { Errors, GatewayError } from '../core/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { AuditSpec } from './config.ts';
import { FORMAT_VERSION, GENESIS, KIND_CODE, indexName, keyId, lineHash, rawPublicKey, segmentName, signLine } from './format.ts';
import type { SigningKey } from './keys.ts';
import { recordsOf, type PendingRecord } from './record.ts';
import type { ArgumentPolicy } from './redact.ts';
import { IndexBuilder, type IndexExtra } from './segindex.ts';
import { lockDir, recoverChain, unlockDir } from './segments.ts';
import { writeTail } from './tail.ts';

/** Receives every record line once it is on disk (stdout JSON, OTLP logs). */
export interface RecordSink {
  write(line: string): void;
  close?(): Promise<void>;
}

export interface WriterOptions {
  readonly dir: string;
  readonly key: SigningKey;
  readonly spec: AuditSpec;
  readonly args: ArgumentPolicy;
  readonly log: Logger;
  readonly sinks?: readonly RecordSink[];
}

interface Waiter {
  resolve(): void;
  reject(err: GatewayError): void;
  timer: NodeJS.Timeout;
}

export class AuditWriter {
  readonly dir: string;
  private spec: AuditSpec;
  private args: ArgumentPolicy;
  private readonly key: SigningKey;
  private readonly kid: string;
  private readonly pub: string;
  private readonly log: Logger;
  private readonly sinks: RecordSink[];

  // Queue: parallel arrays so that enqueueing allocates nothing per call.
  private calls: Call[] = [];
  private durations: number[] = [];
  private taken = 0;
  private scheduled = false;
  private flushing: Promise<void> | undefined;
  private readonly waiters: Waiter[] = [];
  private checkpointDue = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** The newest signed line not yet written out / written but not yet synced (tail.ts). */
  private tail: string | undefined;
  private unsyncedTail: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  // Chain and segment state.
  private seq = 0;
  private prev = GENESIS;
  private segment = 0;
  private fh: FileHandle | undefined;
  private index: IndexBuilder = new IndexBuilder(0);
  private openedAt = 0;
  private unsigned = 0;
  private firstUnsignedAt = 0;
  private lastSyncAt = 0;
  private lines: string[] = [];
  private readonly scratch: PendingRecord[] = [];
  /** Records written since start (for metrics and tests). */
  written = 0;

  private constructor(opts: WriterOptions) {
    this.dir = opts.dir;
    this.spec = opts.spec;
    this.args = opts.args;
    this.key = opts.key;
    this.kid = keyId(opts.key.publicKey);
    this.pub = rawPublicKey(opts.key.publicKey);
    this.log = opts.log;
    this.sinks = [...(opts.sinks ?? [])];
  }

  /** Opens (or continues) the log in `dir`: takes the lock, seals what a crash left open, starts a new segment. */
  static async open(opts: WriterOptions): Promise<AuditWriter> {
    const w = new AuditWriter(opts);
    mkdirSync(w.dir, { recursive: true, mode: 0o750 });
    lockDir(w.dir);
    try {
      ({ segment: w.segment, seq: w.seq, prev: w.prev } = recoverChain(w.dir, w.key, w.log));
      await w.startSegment(w.segment + 1);
      await w.writeOut();
    } catch (err) {
      unlockDir(w.dir);
      throw err;
    }
    const every = Math.max(10, Math.min(opts.spec.checkpoint.everyMs, opts.spec.segment.maxAgeMs || Number.MAX_SAFE_INTEGER));
    w.timer = setInterval(() => w.tick(), every);
    w.timer.unref();
    return w;
  }

  /** Adds a destination for every record written from now on (the console's live view); returns its removal. */
  addSink(sink: RecordSink): () => void {
    this.sinks.push(sink);
    return () => {
      const i = this.sinks.indexOf(sink);
      if (i >= 0) this.sinks.splice(i, 1);
    };
  }

  /** Settings that may change on a config reload (the rest needs a restart). */
  reconfigure(spec: AuditSpec, args: ArgumentPolicy): void {
    this.spec = { ...this.spec, buffer: spec.buffer, checkpoint: spec.checkpoint, sync: spec.sync, arguments: spec.arguments };
    this.args = args;
  }

  /** Records accepted and not yet on disk. */
  get pending(): number {
    return this.calls.length + this.taken;
  }

  /**
   * Back-pressure for the audit guard's admit step: nothing (synchronous) while there is room; otherwise a promise
   * that resolves when there is (`block`) or a refusal (`fail`, or `block` after its timeout).
   */
  admit(): void | Promise<void> {
    if (this.calls.length + this.taken < this.spec.buffer.maxRecords) return undefined;
    if (this.spec.buffer.onFull === 'fail') throw new GatewayError(Errors.AUDIT_UNAVAILABLE);
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new GatewayError(Errors.AUDIT_UNAVAILABLE, `Audit sink is stuck: no room in the audit buffer after ${this.spec.buffer.blockTimeoutMs} ms`));
        }, this.spec.buffer.blockTimeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Queues a settled call (`ms`: its duration). Never blocks, never drops. */
  enqueue(call: Call, ms: number): void {
    if (this.closed) {
      // Only a call that settles after shutdown finished can get here; keep it in the process log at least.
      this.log.error({ call: call.id, op: call.operation, principal: call.principal?.id }, 'audit record after the audit log was closed');
      return;
    }
    this.calls.push(call);
    this.durations.push(ms);
    if (!this.scheduled && this.flushing === undefined) {
      this.scheduled = true;
      setImmediate(this.runFlush);
    }
  }

  private readonly runFlush = (): void => {
    this.scheduled = false;
    if (this.flushing !== undefined) return;
    this.flushing = this.flushLoop()
      .catch((err: unknown) => this.log.error({ err }, 'audit flush failed'))
      .finally(() => {
        this.flushing = undefined;
        if (this.calls.length > 0 || this.checkpointDue) this.schedule();
      });
  };

  private schedule(): void {
    if (this.scheduled || this.flushing !== undefined) return;
    this.scheduled = true;
    setImmediate(this.runFlush);
  }

  private tick(): void {
    const now = Date.now();
    if (this.unsigned > 0 && now - this.firstUnsignedAt >= this.spec.checkpoint.everyMs) this.checkpointDue = true;
    if (this.spec.segment.maxAgeMs > 0 && now - this.openedAt >= this.spec.segment.maxAgeMs && this.index.count > 1) this.checkpointDue = true;
    if (this.checkpointDue) this.schedule();
  }

  private async flushLoop(): Promise<void> {
    while (this.calls.length > 0 || this.checkpointDue) {
      const calls = this.calls;
      const durations = this.durations;
      this.calls = [];
      this.durations = [];
      this.taken = calls.length;
      this.checkpointDue = false;
      const out = this.scratch;
      for (let i = 0; i < calls.length; i++) {
        out.length = 0;
        try {
          recordsOf(calls[i]!, durations[i]!, this.args, out);
        } catch (err) {
          // A record that cannot be serialised still leaves a trace: the call id and why.
          this.log.error({ err, call: calls[i]!.id }, 'audit record could not be built');
          out.length = 0;
          out.push({ body: `"kind":"call","time":${JSON.stringify(new Date(calls[i]!.startedAt).toISOString())},"call":${JSON.stringify(calls[i]!.id)},"error":"record could not be built"`, timeMs: calls[i]!.startedAt, principal: undefined, target: undefined, flags: KIND_CODE.call, outcome: 0 });
        }
        for (const r of out) this.append(r.body, r.timeMs, r.principal, r.target, r.flags, r.outcome, r.extra);
        if (this.segmentFull()) await this.rotate();
      }
      if (this.spec.segment.maxAgeMs > 0 && Date.now() - this.openedAt >= this.spec.segment.maxAgeMs && this.index.count > 1) await this.rotate();
      else if (this.unsigned >= this.spec.checkpoint.everyRecords || (this.unsigned > 0 && Date.now() - this.firstUnsignedAt >= this.spec.checkpoint.everyMs)) {
        this.appendSigned('checkpoint', {});
      }
      await this.writeOut();
      this.taken = 0;
      this.release();
    }
  }

  /** Lets blocked calls in as far as there is room. */
  private release(): void {
    let room = this.spec.buffer.maxRecords - this.pending;
    while (room > 0 && this.waiters.length > 0) {
      const w = this.waiters.shift()!;
      clearTimeout(w.timer);
      w.resolve();
      room--;
    }
  }

  private segmentFull(): boolean {
    // Keep room for the seal record.
    return this.index.count >= this.spec.segment.maxRecords - 1 || this.index.bytes >= this.spec.segment.maxBytes;
  }

  private append(body: string, timeMs: number, principal: string | undefined, target: string | undefined, flags: number, outcome: number, extra?: IndexExtra): void {
    const line = `{"seq":${this.seq},"prev":"${this.prev}",${body}}`;
    this.push(line, timeMs, principal, target, flags, outcome, extra);
  }

  private push(line: string, timeMs: number, principal: string | undefined, target: string | undefined, flags: number, outcome: number, extra?: IndexExtra): void {
    this.index.add(timeMs, principal, target, flags, outcome, Buffer.byteLength(line), extra);
    this.prev = lineHash(line);
    this.seq++;
    this.lines.push(line);
    if (this.unsigned === 0) this.firstUnsignedAt = Date.now();
    this.unsigned++;
  }

  /** Appends a signed open/checkpoint/seal record: the signature covers the line (and so the whole chain before it). */
  private appendSigned(kind: 'open' | 'checkpoint' | 'seal', extra: Record<string, unknown>): void {
    const now = Date.now();
    const json = JSON.stringify({ seq: this.seq, prev: this.prev, kind, time: new Date(now).toISOString(), segment: this.segment, ...extra });
    const line = signLine(json, this.key.privateKey);
    this.push(line, now, undefined, undefined, KIND_CODE[kind], 0);
    this.unsigned = 0;
    this.tail = line;
  }

  /** Writes the buffered lines to the current segment, retrying until the disk takes them. */
  private async writeOut(forceSync = false): Promise<void> {
    if (this.lines.length === 0 && !forceSync) return;
    const lines = this.lines;
    this.lines = [];
    // The newest signed line of this batch (or one written before but not yet synced) names the log's tail.
    const tail = this.tail ?? this.unsyncedTail;
    this.tail = undefined;
    const fh = this.fh!;
    if (lines.length > 0) {
      const data = Buffer.from(`${lines.join('\n')}\n`);
      const end = this.index.bytes;
      const start = end - data.length;
      for (let attempt = 0; ; attempt++) {
        try {
          let off = 0;
          while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten;
          break;
        } catch (err) {
          if (attempt === 0 || attempt % 50 === 0) this.log.error({ err, segment: this.segment, attempt }, 'audit write failed; retrying (calls wait when the buffer fills)');
          try {
            await fh.truncate(start);
          } catch {
            // The retry below rewrites from the same point once truncation works again.
          }
          await new Promise((r) => setTimeout(r, Math.min(1000, 10 * (attempt + 1))));
        }
      }
      this.written += lines.length;
      for (const sink of this.sinks) for (const l of lines) sink.write(l);
    }
    const now = Date.now();
    if (forceSync || this.spec.sync === 'batch' || (this.spec.sync === 'interval' && now - this.lastSyncAt >= 1000)) {
      await fh.datasync();
      this.lastSyncAt = now;
      this.unsyncedTail = undefined;
      if (tail !== undefined) writeTail(this.dir, tail);
    } else this.unsyncedTail = tail;
  }

  private async startSegment(n: number): Promise<void> {
    this.segment = n;
    this.index = new IndexBuilder(n);
    this.fh = await open(join(this.dir, segmentName(n)), 'ax', 0o640);
    this.openedAt = Date.now();
    this.appendSigned('open', { v: FORMAT_VERSION, key: this.kid, pub: this.pub });
  }

  /** Seals the current segment (signed), syncs it, writes its index. */
  private async sealSegment(extra: Record<string, unknown> = {}): Promise<void> {
    this.appendSigned('seal', { records: this.index.count, ...extra });
    await this.writeOut(true);
    await this.fh!.close();
    this.fh = undefined;
    this.index.write(join(this.dir, indexName(this.segment)));
  }

  private async rotate(): Promise<void> {
    // `continued` lets verify notice when the segments after this one were deleted.
    await this.sealSegment({ continued: true });
    await this.startSegment(this.segment + 1);
  }

  /** Flushes everything queued, seals the segment and releases the directory. Idempotent, also when concurrent. */
  close(): Promise<void> {
    return (this.closing ??= this.closeOnce());
  }

  private async closeOnce(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (;;) {
      if (this.flushing !== undefined) await this.flushing;
      else if (this.calls.length > 0 || this.scheduled) await new Promise((r) => setImmediate(r));
      else break;
    }
    this.closed = true;
    // A clean shutdown says so: the next start chains from this seal; a seal made on recovery says `recovered`.
    await this.sealSegment({ shutdown: true });
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new GatewayError(Errors.SHUTTING_DOWN));
    }
    for (const s of this.sinks) await s.close?.();
    unlockDir(this.dir);
  }
}
