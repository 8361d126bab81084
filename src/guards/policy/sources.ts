/**
 * Where policies come from. Each source keeps the last engine it loaded successfully; a build or load that fails
 * is logged with the reason and leaves that engine (and the policy in force) as it was.
 *
 * - DirSource: a Rego directory compiled with `opa build -t wasm` (needs opa), rebuilt when a file changes.
 * - FileSource: a built bundle file, reloaded when it is replaced.
 * - ServiceSource: an OPA-compatible bundle server polled with ETag / If-None-Match.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, watch, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { request } from 'undici';
import type { Logger } from '../../telemetry/logger.ts';
import { readBundle, type PolicyBundle, type ReadOptions } from './bundle.ts';
import type { PolicyEngine } from './engine.ts';
import { buildWasmBundle, isSourceFile } from './opa.ts';
import type { VerificationConfig } from './signature.ts';

export type SourceKind = 'service' | 'dir' | 'file';

/** What sources need from the service that owns them. */
export interface SourceHost {
  readonly log: Logger;
  /** Loads a bundle into an engine and checks it has the required entrypoints (throws why not). */
  load(bundle: PolicyBundle): Promise<PolicyEngine>;
  /** A source has a new engine. `sinceNs` is when the change that caused it was seen (for the reload time). */
  offer(source: PolicySource, sinceNs: bigint | undefined): void;
}

export interface SourceStatus {
  readonly kind: SourceKind;
  readonly location: string;
  readonly revision: string | undefined;
  readonly loadedAt: string | undefined;
  readonly error: string | undefined;
}

/** Common state of a source: its engine, last error and status. */
export abstract class PolicySource {
  abstract readonly kind: SourceKind;
  abstract readonly location: string;
  engine: PolicyEngine | undefined;
  protected lastError: string | undefined;
  protected loadedAt: number | undefined;
  protected readonly host: SourceHost;
  protected closed = false;

  constructor(host: SourceHost) {
    this.host = host;
  }

  /** First load attempt; resolves (never rejects) when done. Returns the error when it failed. */
  abstract start(): Promise<string | undefined>;

  /** Loads again now, without waiting for a file event or the next poll (SIGHUP); returns the error when it failed. */
  abstract refresh(): Promise<string | undefined>;

  close(): void {
    this.closed = true;
  }

  /** Reads, verifies and loads bundle bytes, then puts the engine in force; returns the error when it failed. */
  protected async install(bytes: Uint8Array, opts: ReadOptions, sinceNs: bigint | undefined): Promise<string | undefined> {
    try {
      const engine = await this.host.load(await readBundle(bytes, opts));
      if (this.closed) return undefined;
      this.accept(engine, sinceNs);
      return undefined;
    } catch (err) {
      return this.reject((err as Error).message);
    }
  }

  status(): SourceStatus {
    return {
      kind: this.kind,
      location: this.location,
      revision: this.engine?.revision,
      loadedAt: this.loadedAt === undefined ? undefined : new Date(this.loadedAt).toISOString(),
      error: this.lastError,
    };
  }

  protected accept(engine: PolicyEngine, sinceNs: bigint | undefined): void {
    this.engine = engine;
    this.lastError = undefined;
    this.loadedAt = Date.now();
    this.host.offer(this, sinceNs);
  }

  protected reject(message: string): string {
    this.lastError = message;
    this.host.log.error({ source: this.kind, location: this.location, reason: message }, 'policy bundle rejected; the policy in force stays');
    return message;
  }
}

/** Debounces bursts of file events (editors write in several steps) and remembers when the first one came. */
class Debouncer {
  private timer: NodeJS.Timeout | undefined;
  private first: bigint | undefined;
  private readonly ms: number;
  private readonly run: (sinceNs: bigint) => void;

  constructor(ms: number, run: (sinceNs: bigint) => void) {
    this.ms = ms;
    this.run = run;
  }

  poke(): void {
    this.first ??= process.hrtime.bigint();
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const since = this.first!;
      this.timer = undefined;
      this.first = undefined;
      this.run(since);
    }, this.ms);
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

export interface DirSourceOptions {
  readonly dir: string;
  readonly opa: string;
  readonly watch: boolean;
  /** Entrypoints to compile (gateway-level and route overrides). */
  readonly entrypoints: readonly string[];
}

/** A Rego directory built with opa; rebuilt on change (builds never overlap; a change during a build queues one). */
export class DirSource extends PolicySource {
  readonly kind = 'dir';
  readonly location: string;
  private readonly opts: DirSourceOptions;
  private readonly work: string;
  private watcher: FSWatcher | undefined;
  private readonly debounce: Debouncer;
  private building: Promise<string | undefined> | undefined;
  private queued: bigint | undefined;

  constructor(host: SourceHost, opts: DirSourceOptions) {
    super(host);
    this.opts = opts;
    this.location = opts.dir;
    this.work = mkdtempSync(join(tmpdir(), 'tollgate-policy-'));
    this.debounce = new Debouncer(10, (since) => void this.rebuild(since));
  }

  async start(): Promise<string | undefined> {
    const err = await this.rebuild(undefined);
    if (this.opts.watch && !this.closed) {
      try {
        this.watcher = watch(this.opts.dir, { recursive: true, persistent: false }, (_e, name) => {
          // Only files that go into the bundle (not tests, docs or editor swap files) trigger a build.
          if (name === null || isSourceFile(basename(name))) this.debounce.poke();
        });
      } catch (e) {
        this.host.log.warn({ dir: this.opts.dir, err: (e as Error).message }, 'cannot watch the policy directory; edits need a restart');
      }
    }
    return err;
  }

  /** Builds now (or after the build in progress). */
  refresh(): Promise<string | undefined> {
    return this.rebuild(process.hrtime.bigint());
  }

  rebuild(sinceNs: bigint | undefined): Promise<string | undefined> {
    if (this.building) {
      this.queued = sinceNs ?? process.hrtime.bigint();
      return this.building;
    }
    this.building = this.buildOnce(sinceNs).finally(() => {
      this.building = undefined;
      const next = this.queued;
      this.queued = undefined;
      if (next !== undefined && !this.closed) void this.rebuild(next);
    });
    return this.building;
  }

  private async buildOnce(sinceNs: bigint | undefined): Promise<string | undefined> {
    const output = join(this.work, 'bundle.tar.gz');
    let built;
    try {
      built = await buildWasmBundle({ opa: this.opts.opa, dir: this.opts.dir, entrypoints: this.opts.entrypoints, output });
    } catch (err) {
      return this.reject(`opa build failed: ${(err as Error).message}`);
    }
    if (this.closed) return undefined;
    if (!built.ok) return this.reject(`opa build failed:\n${built.error}`);
    return this.install(readFileSync(output), { source: this.opts.dir }, sinceNs);
  }

  override close(): void {
    super.close();
    this.debounce.cancel();
    this.watcher?.close();
    rmSync(this.work, { recursive: true, force: true });
  }
}

export interface FileSourceOptions {
  readonly file: string;
  readonly watch: boolean;
  readonly verification: VerificationConfig | undefined;
  readonly maxBytes: number;
}

/** A built bundle file; a replaced file (new content) is loaded again. */
export class FileSource extends PolicySource {
  readonly kind = 'file';
  readonly location: string;
  private readonly opts: FileSourceOptions;
  private watcher: FSWatcher | undefined;
  private readonly debounce: Debouncer;
  private digest: string | undefined;
  private loading: Promise<string | undefined> | undefined;

  constructor(host: SourceHost, opts: FileSourceOptions) {
    super(host);
    this.opts = opts;
    this.location = opts.file;
    this.debounce = new Debouncer(20, (since) => void this.reload(since));
  }

  async start(): Promise<string | undefined> {
    const err = await this.reload(undefined);
    if (this.opts.watch && !this.closed) {
      const name = basename(this.opts.file);
      try {
        // Watch the directory: a bundle dropped in by rename replaces the inode a file watch would follow.
        this.watcher = watch(dirname(this.opts.file), { persistent: false }, (_e, changed) => {
          // A Kubernetes ConfigMap/Secret volume replaces the file by swapping its `..data` symlink (the file itself,
          // a symlink into it, never changes): that swap is a change of the bundle too.
          if (changed === null || changed === name || changed.startsWith('..data')) this.debounce.poke();
        });
      } catch (e) {
        this.host.log.warn({ file: this.opts.file, err: (e as Error).message }, 'cannot watch the bundle file; replacing it needs a restart');
      }
    }
    return err;
  }

  refresh(): Promise<string | undefined> {
    return this.reload(process.hrtime.bigint());
  }

  private async reload(sinceNs: bigint | undefined): Promise<string | undefined> {
    if (this.loading) await this.loading;
    this.loading = this.loadOnce(sinceNs);
    try {
      return await this.loading;
    } finally {
      this.loading = undefined;
    }
  }

  private async loadOnce(sinceNs: bigint | undefined): Promise<string | undefined> {
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.opts.file);
    } catch (err) {
      return this.reject(`cannot read bundle: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest === this.digest) return undefined; // same bytes (touched, or a second event for one write)
    const err = await this.install(bytes, { source: this.opts.file, verification: this.opts.verification, maxBytes: this.opts.maxBytes }, sinceNs);
    if (err === undefined) this.digest = digest;
    return err;
  }

  override close(): void {
    super.close();
    this.debounce.cancel();
    this.watcher?.close();
  }
}

export interface ServiceSourceOptions {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly verification: VerificationConfig | undefined;
}

/** Polls a bundle server (OPA's protocol: GET with If-None-Match; 304 = unchanged). */
export class ServiceSource extends PolicySource {
  readonly kind = 'service';
  readonly location: string;
  private readonly opts: ServiceSourceOptions;
  private etag: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private aborter: AbortController | undefined;
  /** Polls done, by HTTP status (tests and status). */
  readonly polls = { ok: 0, notModified: 0, failed: 0 };

  constructor(host: SourceHost, opts: ServiceSourceOptions) {
    super(host);
    this.opts = opts;
    this.location = opts.url;
  }

  async start(): Promise<string | undefined> {
    const err = await this.poll();
    this.schedule();
    return err;
  }

  private schedule(): void {
    if (this.closed) return;
    const { minDelayMs: min, maxDelayMs: max } = this.opts;
    this.timer = setTimeout(() => {
      void this.poll().then(() => this.schedule());
    }, min + Math.random() * (max - min));
    this.timer.unref();
  }

  refresh(): Promise<string | undefined> {
    return this.poll();
  }

  /** One poll: fetch if changed, verify, load. Resolves with the error when it failed. */
  async poll(): Promise<string | undefined> {
    const headers: Record<string, string> = { ...this.opts.headers, accept: 'application/gzip, application/octet-stream' };
    if (this.etag !== undefined) headers['if-none-match'] = this.etag;
    this.aborter = new AbortController();
    const started = process.hrtime.bigint();
    let body: Buffer;
    let etag: string | undefined;
    try {
      const res = await request(this.opts.url, {
        method: 'GET',
        headers,
        signal: this.aborter.signal,
        headersTimeout: this.opts.timeoutMs,
        bodyTimeout: this.opts.timeoutMs,
      });
      if (res.statusCode === 304) {
        await res.body.dump();
        this.polls.notModified++;
        return undefined;
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        this.polls.failed++;
        return this.reject(`bundle server answered HTTP ${res.statusCode}`);
      }
      const length = Number(res.headers['content-length'] ?? 0);
      if (length > this.opts.maxBytes) {
        res.body.destroy();
        this.polls.failed++;
        return this.reject(`bundle is larger than ${this.opts.maxBytes} bytes`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > this.opts.maxBytes) {
          res.body.destroy();
          this.polls.failed++;
          return this.reject(`bundle is larger than ${this.opts.maxBytes} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
      body = Buffer.concat(chunks);
      const e = res.headers.etag;
      etag = typeof e === 'string' && e !== '' ? e : undefined;
    } catch (err) {
      if (this.closed) return undefined;
      this.polls.failed++;
      return this.reject(`bundle download failed: ${(err as Error).message}`);
    }
    const err = await this.install(body, { source: this.opts.url, verification: this.opts.verification, maxBytes: this.opts.maxBytes }, started);
    if (err === undefined) {
      // Only a bundle in force is revalidated with its ETag: a refused one is fetched (and refused) again.
      this.etag = etag;
      this.polls.ok++;
    } else this.polls.failed++;
    return err;
  }

  override close(): void {
    super.close();
    if (this.timer) clearTimeout(this.timer);
    this.aborter?.abort();
  }
}
