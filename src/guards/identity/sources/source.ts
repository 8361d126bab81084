/**
 * A source of verification keys for one issuer. Subclasses fetch or read documents and `publish` them; the current
 * KeySet is swapped atomically, and a bad document never replaces a good one (last good bundle kept).
 */
import type { Logger } from '../../../telemetry/logger.ts';
import { BundleError, parseKeySet, type KeyProfile, type KeySet } from '../keys.ts';

export abstract class KeySource {
  /** Human-readable description for logs ("trust domain example.org (https_web ...)"). */
  readonly label: string;
  /** Identity of the config this source was built from: an unchanged source survives config reloads. */
  readonly fingerprint: string;
  readonly profile: KeyProfile;
  protected readonly log: Logger;
  current: KeySet | undefined;
  /** When the current set was last confirmed (ms since epoch). */
  updatedAt = 0;
  lastError: string | undefined;
  private readyWaiters: Array<() => void> = [];
  private readonly listeners = new Set<(set: KeySet) => void>();

  constructor(init: { label: string; fingerprint: string; profile: KeyProfile; log: Logger }) {
    this.label = init.label;
    this.fingerprint = init.fingerprint;
    this.profile = init.profile;
    this.log = init.log;
  }

  /** Starts reading/fetching. Must not throw: failures are logged and retried. */
  abstract start(): void;
  abstract close(): void;

  /** Asks for a fresh copy soon (an unknown kid was seen). Sources decide how often they honour it. */
  refresh(): void {}

  /** Resolves once a first key set is in force, or after `timeoutMs` (whatever came first). */
  ready(timeoutMs: number): Promise<void> {
    if (this.current) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.readyWaiters.push(done);
    });
  }

  /** Called with each new key set (not with an unchanged refresh). */
  onChange(listener: (set: KeySet) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Parses a document and puts it in force if it differs; returns false (and keeps the last good) if unusable. */
  protected publish(doc: unknown): boolean {
    let parsed: ReturnType<typeof parseKeySet>;
    try {
      parsed = parseKeySet(doc, this.profile, this.current);
    } catch (err) {
      this.fail(err instanceof BundleError ? err.message : String(err));
      return false;
    }
    this.updatedAt = Date.now();
    this.lastError = undefined;
    const { set, skipped } = parsed;
    if (this.current && this.current.fingerprint === set.fingerprint) return true;
    const first = this.current === undefined;
    this.current = set;
    this.log.info({ source: this.label, keys: set.size, skipped, sequence: set.sequence }, first ? 'trust bundle loaded' : 'trust bundle rotated');
    for (const l of this.listeners) l(set);
    for (const w of this.readyWaiters.splice(0)) w();
    return true;
  }

  protected fail(reason: string): void {
    if (this.lastError !== reason) {
      this.log.warn({ source: this.label, reason, keeping: this.current ? 'last good bundle' : 'nothing (no bundle yet)' }, 'trust bundle update failed');
    }
    this.lastError = reason;
  }
}

/** Keys fixed at construction (the dev trust domain's own public key). */
export class StaticKeySource extends KeySource {
  private readonly doc: unknown;

  constructor(init: { label: string; fingerprint: string; profile: KeyProfile; log: Logger; doc: unknown }) {
    super(init);
    this.doc = init.doc;
  }

  start(): void {
    this.publish(this.doc);
  }

  close(): void {}
}
