/**
 * The gateway's side of the OTLP export worker (./worker.ts): starts the worker thread, numbers resources and
 * instrumentation scopes, posts hand-off chunks, and answers flush/shutdown once the worker has done them.
 *
 * Why a worker: the SDK's batch processors serialise each batch (512 spans by default) to OTLP in one go on the
 * thread that calls them; in the gateway that stalled every request behind it for milliseconds (bench/NOTES.md).
 * Handing a span over as plain data costs about a third of serialising it, in chunks of ~50 us (bench/NOTES.md).
 *
 * Accounting: the worker counts, in shared Int32s (Atomics), the items whose export finished and those whose export
 * failed, so `outstanding` (handed over, export not finished) and the failures need no message per chunk.
 */
import { getCompileCacheDir } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Attributes } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import { COUNTERS, FAILED, SETTLED, SIGNALS, type FromWorker, type ResourceDef, type ScopeDef, type Signal, type ToWorker, type WorkerSetup } from './wire.ts';

const WORKER_URL = new URL('./worker.ts', import.meta.url);
/** Upper bound on waiting for the worker at shutdown beyond the export timeout it applies itself. */
const SHUTDOWN_GRACE_MS = 5_000;
/** Items per hand-off message: ~50 us of structured clone for spans, amortising the ~2 us cost of a message. */
export const HANDOFF_ITEMS = 64;
/** How long a partial chunk may wait for more (the worker's own batch delay, 5 s by default, comes on top). */
export const HANDOFF_DELAY_MS = 10;
/**
 * The worker isolate's young generation (MB). V8 sizes it like the gateway's (up to 3 x 32 MB semi-spaces on a
 * machine with this much memory) and the worker allocates fast (a structured clone per chunk, OTLP encoding), so
 * under load it grew to ~100 MB of RSS for batches that are a few MB (bench/NOTES.md, memory). Its old generation
 * stays V8's: what it holds is bounded by the batch processors' queue (OTEL_BSP_MAX_QUEUE_SIZE...).
 */
export const WORKER_YOUNG_GENERATION_MB = 8;

/**
 * The worker's entry: turns on the compile cache the gateway's thread uses (bin/tollgate.mjs; a worker does not
 * inherit it), then loads worker.ts, so a warm start neither strips nor compiles the exporters' modules again.
 */
function workerBoot(): string {
  const cache = getCompileCacheDir();
  const enable = cache === undefined ? '' : `process.getBuiltinModule('node:module').enableCompileCache(${JSON.stringify(cache)});`;
  return `${enable}import(${JSON.stringify(WORKER_URL.href)}).catch((err) => { setImmediate(() => { throw err; }); });`;
}

export type Report = (level: 'warn' | 'error', message: string) => void;

export interface ExportLinkOptions {
  /** The environment the worker's exporters are configured from (OTEL_*). */
  readonly env: NodeJS.ProcessEnv;
  readonly signals: readonly Signal[];
  /** Problems worth an operator's attention: the worker died, items were dropped. */
  readonly report: Report;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

/** A scope as the logs SDK hands it over (a logger's scope may have attributes). */
type ScopeWithAttributes = InstrumentationScope & { readonly attributes?: Attributes };

export class ExportLink {
  readonly report: Report;
  private readonly worker: Worker;
  private readonly counters: Int32Array;
  /** Items posted per signal (Int32 arithmetic, like the counters, so both wrap alike). */
  private readonly posted = new Int32Array(SIGNALS.length);
  private readonly open: Set<Signal>;
  private readonly closing = new Set<Signal>();
  private readonly queues: Array<{ handOff(): void; lost(): void }> = [];
  private dead = false;
  private readonly resources = new Map<Resource, number>();
  private readonly scopes = new Map<InstrumentationScope, number>();
  private newResources: ResourceDef[] = [];
  private newScopes: ScopeDef[] = [];
  /** Set while a resource's asynchronous attributes settle: nothing is posted before its definition can be. */
  private settling: Promise<void> | undefined;
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;
  private readonly exportTimeoutMs: number;
  private terminated: Promise<number> | undefined;

  constructor(opts: ExportLinkOptions) {
    this.report = opts.report;
    this.open = new Set(opts.signals);
    const shared = new SharedArrayBuffer(COUNTERS * Int32Array.BYTES_PER_ELEMENT);
    this.counters = new Int32Array(shared);
    this.exportTimeoutMs = Math.max(positive(opts.env.OTEL_BSP_EXPORT_TIMEOUT, 30_000), positive(opts.env.OTEL_BLRP_EXPORT_TIMEOUT, 30_000));
    const setup: WorkerSetup = { signals: opts.signals, counters: shared };
    this.worker = new Worker(workerBoot(), {
      eval: true,
      env: { ...opts.env },
      workerData: setup,
      name: 'tollgate-otlp-export',
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    // The worker never keeps the process alive by itself; flush and shutdown hold a reference while they wait.
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => this.answered(m));
    this.worker.on('error', (err) => this.died(`OTLP export worker failed: ${err.message}`));
    this.worker.on('exit', (code) => this.died(`OTLP export worker exited (code ${code})`));
  }

  /** False once the worker is gone (died, or shut down): items are then dropped. */
  get alive(): boolean {
    return !this.dead;
  }

  /** Items of `signal` handed over whose export has not finished (queued in the worker, or being exported). */
  outstanding(signal: Signal): number {
    const i = SIGNALS.indexOf(signal);
    return (this.posted[i]! - Atomics.load(this.counters, SETTLED + i)) | 0;
  }

  /** Items of `signal` whose export failed (collector unreachable or refusing, export timeout) since start. */
  failed(signal: Signal): number {
    return Atomics.load(this.counters, FAILED + SIGNALS.indexOf(signal));
  }

  register(queue: { handOff(): void; lost(): void }): void {
    this.queues.push(queue);
  }

  /** The number a resource travels as (its attributes go out once, when settled). */
  resourceId(r: Resource): number {
    let id = this.resources.get(r);
    if (id !== undefined) return id;
    id = this.resources.size;
    this.resources.set(r, id);
    const def = id;
    if (r.asyncAttributesPending && r.waitForAsyncAttributes !== undefined) {
      // NodeSDK's detected resource (host id...) settles asynchronously; read its attributes only once settled.
      const settled = r.waitForAsyncAttributes().catch(() => undefined);
      const gate: Promise<void> = Promise.all([this.settling, settled]).then(() => {
        this.newResources.push({ id: def, attributes: r.attributes, schemaUrl: r.schemaUrl });
        if (this.settling === gate) this.settling = undefined;
        for (const q of this.queues) q.handOff();
      });
      this.settling = gate;
    } else {
      this.newResources.push({ id, attributes: r.attributes, schemaUrl: r.schemaUrl });
    }
    return id;
  }

  scopeId(s: ScopeWithAttributes): number {
    let id = this.scopes.get(s);
    if (id !== undefined) return id;
    id = this.scopes.size;
    this.scopes.set(s, id);
    this.newScopes.push({ id, name: s.name, version: s.version, schemaUrl: s.schemaUrl, attributes: s.attributes });
    return id;
  }

  /** Whether items can be posted now (no resource definition pending). */
  get ready(): boolean {
    return this.settling === undefined;
  }

  /** Posts a chunk, with any new definitions in the same message. */
  send(signal: Signal, items: unknown[]): void {
    const resources = this.newResources.length === 0 ? undefined : this.newResources;
    const scopes = this.newScopes.length === 0 ? undefined : this.newScopes;
    if (resources !== undefined) this.newResources = [];
    if (scopes !== undefined) this.newScopes = [];
    const i = SIGNALS.indexOf(signal);
    this.posted[i] = (this.posted[i]! + items.length) | 0;
    this.worker.postMessage({ t: signal, resources, scopes, items } as ToWorker);
  }

  /** Waits for any resource definition to settle (the queues hand off once it has). */
  async settled(): Promise<void> {
    while (this.settling !== undefined) await this.settling;
  }

  /** Asks the worker to export everything of `signal` it holds. */
  flush(signal: Signal): Promise<void> {
    return this.request('flush', signal);
  }

  /**
   * Asks the worker to flush `signal` and shut its exporter down; once every signal has, ends the worker. Bounded
   * by the export timeout plus a grace period, so a stuck collector cannot hold the gateway's exit forever.
   */
  async close(signal: Signal): Promise<void> {
    if (!this.open.has(signal) || this.closing.has(signal)) return;
    this.closing.add(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${this.exportTimeoutMs + SHUTDOWN_GRACE_MS} ms`)), this.exportTimeoutMs + SHUTDOWN_GRACE_MS);
    });
    try {
      await Promise.race([this.request('shutdown', signal), timeout]);
    } catch (err) {
      this.report('error', `OTLP export worker did not flush ${signal} at shutdown: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    // The last signal to close ends the worker (the others may still be flushing until then).
    this.open.delete(signal);
    if (this.open.size === 0) await this.terminate();
  }

  private terminate(): Promise<number> {
    this.dead = true;
    for (const w of this.waiters.values()) w.reject(new Error('OTLP export worker ended'));
    this.waiters.clear();
    this.terminated ??= this.worker.terminate();
    return this.terminated;
  }

  private request(t: 'flush' | 'shutdown', signal: Signal): Promise<void> {
    if (this.dead) return Promise.resolve();
    const id = this.nextId++;
    const done = new Promise<void>((resolve, reject) => this.waiters.set(id, { resolve, reject }));
    // Keep the process alive while the worker works: at SIGTERM nothing else may be left on the event loop.
    this.worker.ref();
    this.worker.postMessage({ t, id, signal } as ToWorker);
    return done;
  }

  private answered(m: FromWorker): void {
    const w = this.waiters.get(m.id);
    if (w === undefined) return;
    this.waiters.delete(m.id);
    if (this.waiters.size === 0) this.worker.unref();
    if (m.error === undefined) w.resolve();
    else w.reject(new Error(m.error));
  }

  private died(message: string): void {
    if (this.dead) return;
    this.dead = true;
    this.report('error', `${message}; telemetry is no longer exported`);
    for (const q of this.queues) q.lost();
    for (const w of this.waiters.values()) w.reject(new Error(message));
    this.waiters.clear();
  }
}

/**
 * One signal's hand-off on the gateway's thread: items join a chunk that is posted when it holds HANDOFF_ITEMS or
 * HANDOFF_DELAY_MS after its first item. The signal's max queue size (OTEL_BSP_MAX_QUEUE_SIZE /
 * OTEL_BLRP_MAX_QUEUE_SIZE) bounds every item between its end and the end of its export: in the chunk, on its way,
 * in the worker's batch processor (whose own bound, the same number, is then never reached) or being exported.
 * Items over it are dropped and counted here, where the metrics see them.
 */
export class HandOffQueue<D> {
  /** Items handed to the worker since start. */
  handedOver = 0;
  /** Items dropped since start (queue full, or the worker gone). */
  dropped = 0;
  /** Items whose export failed since start. */
  get failed(): number {
    return this.link.failed(this.signal);
  }
  private readonly link: ExportLink;
  private readonly signal: Signal;
  private readonly maxQueueSize: number;
  private pending: D[] = [];
  private timer: NodeJS.Timeout | undefined;
  private droppedSinceReport = 0;

  constructor(link: ExportLink, signal: Signal, maxQueueSize: number) {
    this.link = link;
    this.signal = signal;
    this.maxQueueSize = maxQueueSize;
    link.register(this);
  }

  /** Whether one more item fits; when not, the item is counted as dropped. */
  admit(): boolean {
    if (this.link.alive && this.pending.length + this.link.outstanding(this.signal) < this.maxQueueSize) return true;
    this.dropped++;
    this.droppedSinceReport++;
    return false;
  }

  push(item: D): void {
    if (this.droppedSinceReport > 0) {
      // As the SDK's batch processors do: one line per run of drops, when room comes back.
      this.link.report('warn', `Dropped ${this.droppedSinceReport} ${this.signal} because maxQueueSize reached`);
      this.droppedSinceReport = 0;
    }
    this.pending.push(item);
    if (this.pending.length >= HANDOFF_ITEMS) this.handOff();
    else if (this.timer === undefined) {
      this.timer = setTimeout(this.onTimer, HANDOFF_DELAY_MS);
      this.timer.unref();
    }
  }

  /** Posts the pending chunk now (unless a resource definition is still settling: then when it has). */
  handOff(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0 || !this.link.ready || !this.link.alive) return;
    const items = this.pending;
    this.pending = [];
    this.handedOver += items.length;
    this.link.send(this.signal, items);
  }

  /** Everything pending is handed over, then the worker exports what it holds. */
  async flush(): Promise<void> {
    await this.link.settled();
    this.handOff();
    await this.link.flush(this.signal);
  }

  /** Hands over what is pending, then the worker flushes and shuts this signal's exporter down. */
  async close(): Promise<void> {
    await this.link.settled();
    this.handOff();
    await this.link.close(this.signal);
  }

  /** The worker is gone: what was pending or not yet exported is lost. */
  lost(): void {
    this.dropped += this.pending.length + this.link.outstanding(this.signal);
    this.pending = [];
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.handOff();
  };
}

/** A positive number from the environment, else the fallback (the SDK's default). */
export function positive(raw: string | undefined, fallback: number): number {
  const n = raw === undefined || raw.trim() === '' ? Number.NaN : Number(raw);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}
