/**
 * Watches files by watching their directories, so that a file replaced rather than rewritten (rename over it, `sed -i`,
 * most editors, unlink + create, `git checkout`, a Kubernetes ConfigMap's `..data` symlink swap) is seen like an
 * in-place write. A watch on a file follows its inode and goes deaf once the name points at another one; Node's
 * recursive `fs.watch` on Linux watches files that way. Here every directory of the tree has its own watcher, the set
 * is re-armed when directories come or go, and a cheap periodic check of a stat digest (names, inodes, sizes, mtimes:
 * no file is read) catches anything the watchers missed, such as the watched root itself being replaced.
 */
import { createHash } from 'node:crypto';
import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join, relative } from 'node:path';

export interface DirWatchOptions {
  /** The directory watched. */
  readonly root: string;
  /** Watch subdirectories too (a Rego tree); false: only the root's entries (a config dir, a bundle's dir). */
  readonly recursive: boolean;
  /** True for a path (relative to root, `/`-separated) whose change matters. Hidden entries never matter. */
  readonly relevant: (path: string) => boolean;
  /** Called once per burst of changes, `sinceNs` being when its first event was seen. */
  readonly onChange: (sinceNs: bigint, cause: 'event' | 'check') => void;
  /** Quiet time that ends a burst (editors write in several steps). */
  readonly debounceMs: number;
  /** Period of the digest check (0: none). */
  readonly checkIntervalMs: number;
  /** Told when a directory cannot be watched (the periodic check still covers it). */
  readonly warn?: (message: string, err: Error) => void;
}

export class DirWatcher {
  private readonly opts: DirWatchOptions;
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private first: bigint | undefined;
  private interval: NodeJS.Timeout | undefined;
  private digest: string;
  private closed = false;

  constructor(opts: DirWatchOptions) {
    this.opts = opts;
    this.arm();
    this.digest = this.computeDigest();
    if (opts.checkIntervalMs > 0) {
      this.interval = setInterval(() => this.check(), opts.checkIntervalMs);
      this.interval.unref();
    }
  }

  /** Directories watched now (tests). */
  get directories(): readonly string[] {
    return [...this.watchers.keys()];
  }

  /** The periodic check: re-arms and reports a change when the digest moved without an event having done so. */
  check(): boolean {
    if (this.closed) return false;
    const now = this.computeDigest();
    if (now === this.digest) return false;
    this.digest = now;
    this.arm();
    if (this.timer === undefined) this.opts.onChange(process.hrtime.bigint(), 'check');
    return true;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.interval) clearInterval(this.interval);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Watches every directory of the tree that is not watched yet; drops watchers of directories gone. */
  private arm(): void {
    const dirs = this.opts.recursive ? this.tree() : [this.opts.root];
    const wanted = new Set(dirs);
    for (const [dir, w] of this.watchers) {
      if (wanted.has(dir) && !this.replaced(dir)) continue;
      w.close();
      this.watchers.delete(dir);
    }
    for (const dir of dirs) if (!this.watchers.has(dir)) this.watchDir(dir);
  }

  private readonly inodes = new Map<string, bigint>();

  /** True when `dir` is now another directory than the one watched (renamed away and replaced). */
  private replaced(dir: string): boolean {
    const ino = inodeOf(dir);
    return ino !== this.inodes.get(dir);
  }

  private watchDir(dir: string): void {
    try {
      const w = watch(dir, { persistent: false }, (event, name) => this.event(dir, event, name));
      w.on('error', () => {
        // The directory went away: forget it; the next event or check re-arms what exists then.
        w.close();
        if (this.watchers.get(dir) === w) this.watchers.delete(dir);
        this.poke();
      });
      this.watchers.set(dir, w);
      this.inodes.set(dir, inodeOf(dir) ?? -1n);
    } catch (err) {
      if (dir === this.opts.root) this.opts.warn?.(`cannot watch ${dir}`, err as Error);
    }
  }

  private event(dir: string, event: string, name: string | Buffer | null): void {
    if (this.closed) return;
    if (name === null) return this.poke();
    const entry = name.toString();
    // A ConfigMap volume swaps its `..data` symlink: the only event such an update makes.
    if (entry.startsWith('..')) return this.poke();
    if (entry.startsWith('.')) return;
    const path = relative(this.opts.root, join(dir, entry)).split('\\').join('/');
    // A directory created, removed or renamed inside a recursive tree changes the set of watchers.
    if (event === 'rename' && this.opts.recursive) this.arm();
    if (this.opts.relevant(path) || (event === 'rename' && this.opts.recursive && isDir(join(dir, entry)))) this.poke();
  }

  private poke(): void {
    if (this.closed) return;
    this.first ??= process.hrtime.bigint();
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const since = this.first!;
      this.timer = undefined;
      this.first = undefined;
      this.digest = this.computeDigest();
      this.opts.onChange(since, 'event');
    }, this.opts.debounceMs);
  }

  private tree(): string[] {
    const out: string[] = [];
    const walk = (d: string): void => {
      out.push(d);
      let entries;
      try {
        entries = readdirSync(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) if (!e.name.startsWith('.') && e.isDirectory()) walk(join(d, e.name));
    };
    walk(this.opts.root);
    return out;
  }

  /** Names, inodes, sizes and mtimes of the relevant files (stat follows symlinks: a ConfigMap swap shows). */
  private computeDigest(): string {
    const h = createHash('sha256');
    h.update(String(inodeOf(this.opts.root) ?? 'none'));
    const walk = (d: string): void => {
      let entries;
      try {
        entries = readdirSync(d, { withFileTypes: true });
      } catch {
        return;
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        if (e.name.startsWith('.')) continue;
        const p = join(d, e.name);
        const rel = relative(this.opts.root, p).split('\\').join('/');
        try {
          const s = statSync(p, { bigint: true });
          if (s.isDirectory()) {
            if (this.opts.recursive) walk(p);
            continue;
          }
          if (!this.opts.relevant(rel)) continue;
          h.update(`${rel}\0${s.ino}\0${s.size}\0${s.mtimeNs}\0${s.ctimeNs}\n`);
        } catch {
          // A dangling symlink or a file removed meanwhile: its absence is in the digest.
        }
      }
    };
    walk(this.opts.root);
    return h.digest('hex');
  }
}

function inodeOf(path: string): bigint | undefined {
  try {
    return statSync(path, { bigint: true }).ino;
  } catch {
    return undefined;
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
