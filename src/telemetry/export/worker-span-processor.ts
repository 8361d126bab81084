/**
 * A SpanProcessor that exports from a worker thread. On the gateway's thread a finished, sampled span becomes a
 * small array (spanData) and joins a hand-off chunk; chunks of HANDOFF_SPANS (or whatever a short timer finds) go
 * to the worker by postMessage. The worker (./worker.ts) runs the SDK's own BatchSpanProcessor and OTLP exporter.
 *
 * Why: the BatchSpanProcessor on the gateway's thread serialised each 512-span batch to OTLP protobuf in one go
 * (~1.3 ms warm, several ms in a busy gateway), stalling every request behind it. Handing a span over costs a
 * fifth of serialising it, and in chunks small enough (~30 us) not to show in the latency of the call they land on.
 *
 * Batching semantics stay the SDK's: the worker's BatchSpanProcessor applies OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
 * OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_EXPORT_TIMEOUT and OTEL_BSP_MAX_QUEUE_SIZE. The queue bound also holds here:
 * spans handed over but not yet taken in by the worker (it may be busy serialising) count against the same
 * OTEL_BSP_MAX_QUEUE_SIZE, and spans over it are dropped and counted, as the SDK does. shutdown() (NodeSDK's, at
 * SIGTERM) hands over what is left, waits for the worker to flush and shut its exporter down, then ends it.
 */
import { Worker } from 'node:worker_threads';
import { TraceFlags, diag, type Context } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { spanData, type FromWorker, type ResourceDef, type ScopeDef, type SpanData, type ToWorker } from './span-data.ts';

/** Spans per hand-off message: ~30 us of structured clone, amortising the ~2 us cost of a message. */
const HANDOFF_SPANS = 64;
/** How long a partial chunk may wait for more spans (the worker's batch delay comes on top, 5 s by default). */
const HANDOFF_DELAY_MS = 10;
/** Upper bound on waiting for the worker at shutdown, beyond the export timeout it applies itself. */
const SHUTDOWN_GRACE_MS = 5_000;

const WORKER_URL = new URL('./worker.ts', import.meta.url);

export interface WorkerSpanProcessorOptions {
  /** The environment the exporters are configured from (OTEL_*). */
  readonly env?: NodeJS.ProcessEnv;
  /** Problems worth an operator's attention (the worker died, spans were dropped). Default: OTel's diag. */
  readonly report?: (level: 'warn' | 'error', message: string) => void;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export class WorkerSpanProcessor implements SpanProcessor {
  private readonly worker: Worker;
  private readonly maxQueueSize: number;
  private readonly exportTimeoutMs: number;
  private readonly report: (level: 'warn' | 'error', message: string) => void;
  private state: 'running' | 'closing' | 'dead' = 'running';
  private pending: SpanData[] = [];
  /** Spans posted to the worker that it has not acknowledged yet. */
  private unacked = 0;
  private timer: NodeJS.Timeout | undefined;
  private droppedSinceReport = 0;
  /** Spans dropped since start (queue full, or the worker gone). */
  dropped = 0;
  private readonly resources = new Map<Resource, number>();
  private readonly scopes = new Map<InstrumentationScope, number>();
  private lastResource: Resource | undefined;
  private lastResourceId = 0;
  private lastScope: InstrumentationScope | undefined;
  private lastScopeId = 0;
  private newResources: ResourceDef[] = [];
  private newScopes: ScopeDef[] = [];
  /** Set while a resource's asynchronous attributes settle: nothing is handed over until its definition can be. */
  private waiting: Promise<void> | undefined;
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;
  private closed: Promise<void> | undefined;

  constructor(opts: WorkerSpanProcessorOptions = {}) {
    const env = opts.env ?? process.env;
    this.report = opts.report ?? ((level, message) => diag[level](message));
    this.maxQueueSize = positive(env.OTEL_BSP_MAX_QUEUE_SIZE, 2048);
    this.exportTimeoutMs = positive(env.OTEL_BSP_EXPORT_TIMEOUT, 30_000);
    this.worker = new Worker(WORKER_URL, { env: { ...env }, name: 'tollgate-otlp-export' });
    // The worker never keeps the process alive by itself; flush and shutdown hold a reference while they wait.
    this.worker.unref();
    this.worker.on('message', (m: FromWorker) => this.onMessage(m));
    this.worker.on('error', (err) => this.onDeath(`OTLP export worker failed: ${err.message}`));
    this.worker.on('exit', (code) => {
      if (this.state !== 'dead') this.onDeath(`OTLP export worker exited (code ${code})`);
    });
  }

  onStart(_span: Span, _parent: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (this.state !== 'running') return;
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.pending.length + this.unacked >= this.maxQueueSize) {
      this.dropped++;
      this.droppedSinceReport++;
      return;
    }
    if (this.droppedSinceReport > 0) {
      this.report('warn', `Dropped ${this.droppedSinceReport} spans because maxQueueSize reached`);
      this.droppedSinceReport = 0;
    }
    const r = span.resource;
    const resource = r === this.lastResource ? this.lastResourceId : this.resourceId(r);
    const s = span.instrumentationScope;
    const scope = s === this.lastScope ? this.lastScopeId : this.scopeId(s);
    this.pending.push(spanData(span, resource, scope));
    if (this.pending.length >= HANDOFF_SPANS) this.handOff();
    else if (this.timer === undefined) {
      this.timer = setTimeout(this.onTimer, HANDOFF_DELAY_MS);
      this.timer.unref();
    }
  }

  async forceFlush(): Promise<void> {
    if (this.state !== 'running') return this.closed;
    await this.waiting;
    this.handOff();
    await this.request('flush');
  }

  shutdown(): Promise<void> {
    this.closed ??= this.close();
    return this.closed;
  }

  private async close(): Promise<void> {
    if (this.state === 'dead') return;
    this.state = 'closing';
    try {
      await this.waiting;
      this.handOff();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), this.exportTimeoutMs + SHUTDOWN_GRACE_MS);
      });
      await Promise.race([this.request('shutdown'), timeout]).finally(() => clearTimeout(timer));
    } catch (err) {
      this.report('error', `OTLP export worker did not flush at shutdown: ${(err as Error).message}`);
    }
    this.state = 'dead';
    await this.worker.terminate();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.handOff();
  };

  /** Posts the pending chunk (with any new resource/scope definitions first in the same message). */
  private handOff(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0 || this.waiting !== undefined || this.state === 'dead') return;
    const spans = this.pending;
    this.pending = [];
    const resources = this.newResources.length === 0 ? undefined : this.newResources;
    const scopes = this.newScopes.length === 0 ? undefined : this.newScopes;
    if (resources !== undefined) this.newResources = [];
    if (scopes !== undefined) this.newScopes = [];
    this.unacked += spans.length;
    this.post({ t: 'spans', resources, scopes, spans });
  }

  private resourceId(r: Resource): number {
    let id = this.resources.get(r);
    if (id === undefined) {
      id = this.resources.size;
      this.resources.set(r, id);
      const def = id;
      if (r.asyncAttributesPending && r.waitForAsyncAttributes !== undefined) {
        // NodeSDK's detected resource (host id...) settles asynchronously; its attributes are only read once settled.
        const settled = r.waitForAsyncAttributes().catch(() => undefined);
        const gate: Promise<void> = Promise.all([this.waiting, settled]).then(() => {
          this.newResources.push({ id: def, attributes: r.attributes, schemaUrl: r.schemaUrl });
          if (this.waiting === gate) this.waiting = undefined;
          this.handOff();
        });
        this.waiting = gate;
      } else {
        this.newResources.push({ id, attributes: r.attributes, schemaUrl: r.schemaUrl });
      }
    }
    this.lastResource = r;
    this.lastResourceId = id;
    return id;
  }

  private scopeId(s: InstrumentationScope): number {
    let id = this.scopes.get(s);
    if (id === undefined) {
      id = this.scopes.size;
      this.scopes.set(s, id);
      this.newScopes.push({ id, name: s.name, version: s.version, schemaUrl: s.schemaUrl });
    }
    this.lastScope = s;
    this.lastScopeId = id;
    return id;
  }

  private request(t: 'flush' | 'shutdown'): Promise<void> {
    if (this.state === 'dead') return Promise.resolve();
    const id = this.nextId++;
    const done = new Promise<void>((resolve, reject) => this.waiters.set(id, { resolve, reject }));
    // Keep the process alive while the worker works (at SIGTERM, nothing else may be left on the event loop).
    this.worker.ref();
    this.post({ t, id });
    return done;
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: FromWorker): void {
    if (m.t === 'ack') {
      this.unacked -= m.n;
      return;
    }
    const w = this.waiters.get(m.id);
    if (w === undefined) return;
    this.waiters.delete(m.id);
    if (this.waiters.size === 0) this.worker.unref();
    if (m.error === undefined) w.resolve();
    else w.reject(new Error(m.error));
  }

  private onDeath(message: string): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    this.report('error', `${message}; spans are no longer exported`);
    this.dropped += this.pending.length + this.unacked;
    this.pending = [];
    this.unacked = 0;
    for (const w of this.waiters.values()) w.reject(new Error(message));
    this.waiters.clear();
  }
}

function positive(raw: string | undefined, fallback: number): number {
  const n = raw === undefined || raw.trim() === '' ? Number.NaN : Number(raw);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}
