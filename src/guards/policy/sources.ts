/**
 * Where policies come from. Each source keeps the last engine it loaded successfully; a build or load that fails
 * is logged with the reason and leaves that engine (and the policy in force) as it was.
 * - DirSource: a Rego directory compiled to WASM (needs opa; tollgate-regoc if found), rebuilt when a file changes.
 * - FileSource: a built bundle file, reloaded when it is replaced.
 * - ServiceSource: an OPA-compatible bundle server polled with ETag / If-None-Match.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { request } from 'undici';
import { DirWatcher } from '../../config/dir-watch.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { readBundle, type PolicyBundle, type ReadOptions } from './bundle.ts';
import type { PolicyEngine } from './engine.ts';
import { buildWasmBundle, isSourceFile, sourceRevision } from './opa.ts';
import type { RegoCompiler } from './regoc.ts';
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
  /** Why the last load was refused (the engine loaded before stays in force), and when. */
  readonly error: string | undefined;
  readonly rejectedAt: string | undefined;
}

/** Common state of a source: its engine, last error and status. */
export abstract class PolicySource {
  abstract readonly kind: SourceKind;
  abstract readonly location: string;
  engine: PolicyEngine | undefined;
  protected lastError: string | undefined;
  protected loadedAt: number | undefined;
  protected rejectedAt: number | undefined;
  protected readonly host: SourceHost;
  protected closed = false;

  constructor(host: SourceHost) {
    this.host = host;
  }

  /** First load attempt; resolves (never rejects) when done. Returns the error when it failed. */
  abstract start(): Promise<string | undefined>;

  /** Loads again now, even when nothing seems to have changed (SIGHUP). Returns the error when it failed. */
  abstract reload(): Promise<string | undefined>;

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
      rejectedAt: this.lastError === undefined || this.rejectedAt === undefined ? undefined : new Date(this.rejectedAt).toISOString(),
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
    this.rejectedAt = Date.now();
    this.host.log.error({ source: this.kind, location: this.location, reason: message }, 'policy bundle rejected; the policy in force stays');
    return message;
  }
}

export interface DirSourceOptions {
  readonly dir: string;
  readonly opa: string;
  readonly compiler?: RegoCompiler | undefined; // the persistent compiler (tools/regoc); else `opa build` per build
  readonly watch: boolean;
  /** Period of the safety-net digest check of the watched files (0: none). */
  readonly checkIntervalMs: number;
  readonly entrypoints: readonly string[]; // to compile (gateway-level and route overrides)
}

/** Quiet time ending a burst of file events (a write or a replacement takes a few ms); adds to every reload. */
const DEBOUNCE_MS = 5;

/**
 * A Rego directory compiled to WASM; rebuilt on change (builds never overlap; a change during a build queues one).
 * A change that leaves the sources' content as it was (a touch, a second event for one write) builds nothing.
 */
export class DirSource extends PolicySource {
  readonly kind = 'dir';
  readonly location: string;
  readonly opts: DirSourceOptions;
  private readonly work: string;
  private watcher: DirWatcher | undefined;
  private building: Promise<string | undefined> | undefined;
  private queued: { sinceNs: bigint; force: boolean } | undefined;
  /** Revision of the last build attempted (its outcome is the engine or lastError). */
  private attempted: string | undefined;

  constructor(host: SourceHost, opts: DirSourceOptions) {
    super(host);
    this.opts = opts;
    this.location = opts.dir;
    this.work = mkdtempSync(join(tmpdir(), 'tollgate-policy-'));
  }

  async start(): Promise<string | undefined> {
    if (this.opts.watch) {
      // Armed before the first build: an edit made while it runs queues another one.
      this.watcher = new DirWatcher({
        root: this.opts.dir,
        recursive: true,
        // Only files that go into the bundle (not tests, docs or editor swap files) trigger a build.
        relevant: (path) => isSourceFile(basename(path)),
        debounceMs: DEBOUNCE_MS,
        checkIntervalMs: this.opts.checkIntervalMs,
        onChange: (since, cause) => {
          if (cause === 'check') this.host.log.warn({ dir: this.opts.dir }, 'policy change seen by the periodic check, not by the watcher');
          void this.rebuild(since);
        },
        warn: (message, err) => this.host.log.warn({ dir: this.opts.dir, err: err.message }, `${message}; edits are seen by the periodic check only`),
      });
    }
    return this.rebuild(undefined);
  }

  reload(): Promise<string | undefined> {
    return this.rebuild(process.hrtime.bigint(), true);
  }

  /** Builds now (or after the build in progress). `force` builds even when the sources did not change. */
  rebuild(sinceNs: bigint | undefined, force = false): Promise<string | undefined> {
    if (this.building) {
      const q = this.queued;
      this.queued = { sinceNs: q?.sinceNs ?? sinceNs ?? process.hrtime.bigint(), force: force || (q?.force ?? false) };
      return this.building;
    }
    this.building = this.buildOnce(sinceNs, force).finally(() => {
      this.building = undefined;
      const next = this.queued;
      this.queued = undefined;
      if (next !== undefined && !this.closed) void this.rebuild(next.sinceNs, next.force);
    });
    return this.building;
  }

  private async buildOnce(sinceNs: bigint | undefined, force: boolean): Promise<string | undefined> {
    let revision: string;
    try {
      revision = sourceRevision(this.opts.dir);
    } catch (err) {
      return this.reject(`cannot read the policy directory: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!force && revision === this.attempted) return this.lastError;
    this.attempted = revision;
    const output = join(this.work, 'bundle.tar.gz');
    let built;
    try {
      built = await buildWasmBundle({ opa: this.opts.opa, dir: this.opts.dir, entrypoints: this.opts.entrypoints, output, revision, compiler: this.opts.compiler });
    } catch (err) {
      return this.reject(`opa build failed: ${(err as Error).message}`);
    }
    if (this.closed) return undefined;
    if (!built.ok) return this.reject(`opa build failed:\n${built.error}`);
    return this.install(readFileSync(output), { source: this.opts.dir }, sinceNs);
  }

  override close(): void {
    super.close();
    this.watcher?.close();
    this.opts.compiler?.close();
    rmSync(this.work, { recursive: true, force: true });
  }
}

export interface FileSourceOptions {
  readonly file: string;
  readonly watch: boolean;
  readonly verification: VerificationConfig | undefined;
  readonly maxBytes: number;
  /** Period of the safety-net digest check of the file (0: none). */
  readonly checkIntervalMs: number;
}

/** A built bundle file; a replaced file (new content) is loaded again. */
export class FileSource extends PolicySource {
  readonly kind = 'file';
  readonly location: string;
  private readonly opts: FileSourceOptions;
  private watcher: DirWatcher | undefined;
  private digest: string | undefined;
  private loading: Promise<string | undefined> | undefined;

  constructor(host: SourceHost, opts: FileSourceOptions) {
    super(host);
    this.opts = opts;
    this.location = opts.file;
  }

  async start(): Promise<string | undefined> {
    if (this.opts.watch) {
      const name = basename(this.opts.file);
      // Watch the directory: a bundle dropped in by rename replaces the inode a file watch would follow. A Kubernetes
      // ConfigMap/Secret volume replaces the file by swapping its `..data` symlink: the watcher reports that too.
      this.watcher = new DirWatcher({
        root: dirname(this.opts.file),
        recursive: false,
        relevant: (path) => path === name,
        debounceMs: DEBOUNCE_MS,
        checkIntervalMs: this.opts.checkIntervalMs,
        onChange: (since, cause) => {
          if (cause === 'check') this.host.log.warn({ file: this.opts.file }, 'bundle change seen by the periodic check, not by the watcher');
          void this.load(since, false);
        },
        warn: (message, err) => this.host.log.warn({ file: this.opts.file, err: err.message }, `${message}; a replaced bundle is seen by the periodic check only`),
      });
    }
    return this.load(undefined, false);
  }

  reload(): Promise<string | undefined> {
    return this.load(process.hrtime.bigint(), true);
  }

  private async load(sinceNs: bigint | undefined, force: boolean): Promise<string | undefined> {
    if (this.loading) await this.loading;
    this.loading = this.loadOnce(sinceNs, force);
    try {
      return await this.loading;
    } finally {
      this.loading = undefined;
    }
  }

  private async loadOnce(sinceNs: bigint | undefined, force: boolean): Promise<string | undefined> {
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.opts.file);
    } catch (err) {
      return this.reject(`cannot read bundle: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest === this.digest && !force) return undefined; // same bytes (touched, or a second event for one write)
    const err = await this.install(bytes, { source: this.opts.file, verification: this.opts.verification, maxBytes: this.opts.maxBytes }, sinceNs);
    if (err === undefined) this.digest = digest;
    return err;
  }

  override close(): void {
    super.close();
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

  reload(): Promise<string | undefined> {
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
