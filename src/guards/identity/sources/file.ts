/**
 * A JWKS / SPIFFE bundle in a local file, re-read when it changes. The directory is watched (not the file) so that
 * an atomic replace (write + rename, as Kubernetes ConfigMap mounts do) is seen; a slow poll backs the watcher up.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Logger } from '../../../telemetry/logger.ts';
import type { KeyProfile } from '../keys.ts';
import { KeySource } from './source.ts';

const DEBOUNCE_MS = 50;
const POLL_MS = 30_000;

export class FileKeySource extends KeySource {
  private readonly path: string;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private closed = false;
  private lastText: string | undefined;
  private lastRefresh = 0;

  constructor(init: { label: string; fingerprint: string; profile: KeyProfile; log: Logger; path: string }) {
    super(init);
    this.path = init.path;
  }

  start(): void {
    void this.load();
    const name = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, changed) => {
        if (changed !== null && changed !== name && !changed.startsWith('..')) return;
        this.schedule();
      });
      this.watcher.on('error', (err) => this.fail(`watch failed: ${err.message}`));
    } catch (err) {
      this.fail(`cannot watch ${dirname(this.path)}: ${(err as Error).message}`);
    }
    this.poll = setInterval(() => void this.load(), POLL_MS);
    this.poll.unref();
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.load();
    }, DEBOUNCE_MS);
    this.timer.unref();
  }

  private async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (!this.closed) this.fail(`cannot read ${this.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return;
    }
    if (this.closed || text === this.lastText) return;
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      // A half-written file is retried by the next change event or poll.
      this.fail(`${this.path} is not valid JSON`);
      return;
    }
    if (this.publish(doc)) this.lastText = text;
  }

  /** Unknown kid: re-read soon, at most once a second, never postponing a pending read (tokens cannot stall it). */
  override refresh(): void {
    const now = Date.now();
    if (this.timer || now - this.lastRefresh < 1_000) return;
    this.lastRefresh = now;
    this.schedule();
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
    if (this.poll) clearInterval(this.poll);
  }
}
