/**
 * Verified-token cache: a token's signature is verified once, then every call presenting it costs a hash and a Map
 * lookup. Keyed by the SHA-256 of the token (the cache never holds the bearer credential itself), valid until `exp`
 * (plus leeway) and only while the issuer still publishes the key that verified it, so a key removed from a bundle
 * stops being accepted at once. Bounded, least recently used first: a hit moves the entry to the young end (a Map
 * keeps insertion order), so a flood of new tokens evicts idle ones, not the tokens of callers active right now.
 */
import { hash } from 'node:crypto';
import type { AuthFailure, VerifiedToken } from './token.ts';

export class VerifiedTokenCache {
  private readonly entries = new Map<string, VerifiedToken>();
  private readonly max: number;
  private readonly leewayMs: number;

  constructor(maxEntries: number, leewaySeconds: number) {
    this.max = maxEntries;
    this.leewayMs = leewaySeconds * 1000;
  }

  /** The cache key of a token. */
  static key(token: string): string {
    return hash('sha256', token, 'base64');
  }

  get size(): number {
    return this.entries.size;
  }

  /** The verified token for this key if it is still valid now; stale entries are dropped. */
  get(key: string, now: number): VerifiedToken | undefined {
    const v = this.entries.get(key);
    if (v === undefined) return undefined;
    const keys = v.issuer.source.current;
    if (now < v.expiresAt + this.leewayMs && keys !== undefined && keys.has(v.key)) {
      this.entries.delete(key);
      this.entries.set(key, v);
      return v;
    }
    this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: VerifiedToken): void {
    if (this.max === 0) return;
    if (this.entries.delete(key)) {
      this.entries.set(key, value);
      return;
    }
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, value);
  }

  clear(): void {
    this.entries.clear();
  }
}

/**
 * Tokens that failed verification, by the same hash, for a short time: a flood replaying one bad token costs a hash
 * and a lookup each instead of a signature check. Bounded: when full, the oldest entry goes first.
 */
export class FailedTokenCache {
  private readonly entries = new Map<string, { failure: AuthFailure; until: number }>();
  private readonly max: number;
  private readonly ttlMs: number;

  constructor(maxEntries: number, ttlMs: number) {
    this.max = maxEntries;
    this.ttlMs = ttlMs;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now: number): AuthFailure | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (now < e.until) return e.failure;
    this.entries.delete(key);
    return undefined;
  }

  set(key: string, failure: AuthFailure): void {
    if (this.max === 0 || this.ttlMs === 0) return;
    if (this.entries.size >= this.max && !this.entries.has(key)) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { failure, until: Date.now() + this.ttlMs });
  }
}
