/**
 * Things callers own for a while that every replica must find (A2A task bindings: src/protocols/a2a/tasks.ts; A2A
 * push relay hooks: push.ts; OpenAI stored responses: src/protocols/openai/owners.ts).
 *
 * This replica's OwnedTable (bounded, a share per owner) is the only record without the shared store, and a cache in
 * front of Redis with it: an entry is written with `SET <prefix><key> <value> PX <ttl> NX` (the first writer wins,
 * nothing is ever overwritten) and read with GET when this replica does not hold it. A store that cannot answer fails
 * closed: the feature's 503 TG_STORE_UNAVAILABLE, never a guess.
 */
import { Errors, GatewayError } from '../core/errors.ts';
import { OwnedTable } from '../core/owned-table.ts';
import type { RedisStore } from './redis.ts';

/** Keys read with one MGET at most (a batch of `getMany`). */
const BATCH = 500;

export interface SharedTableOptions<V> {
  /** Names the entries in refusals ("A2A tasks"). */
  readonly what: string;
  /** Entries this replica holds in memory at most (a tenth of them per owner). */
  readonly max: number;
  /** The message of TG_STORE_UNAVAILABLE: what cannot be done while the store cannot answer. */
  readonly unavailable: string;
  /** The value as stored in Redis. */
  readonly encode: (value: V) => string;
  /** A stored value read back; undefined when it is not one (taken as absent). */
  readonly decode: (raw: string) => V | undefined;
  /** For a value read from the store: its owner and expiry, to keep it in this replica's cache (absent: not kept). */
  readonly cacheRead?: ((value: V) => { owner: string; until: number }) | undefined;
}

export class SharedTable<V> {
  readonly store: RedisStore | undefined;
  /** This replica's entries: without the shared store the only record of them, with it a cache. */
  readonly local: OwnedTable<V>;
  private readonly o: SharedTableOptions<V>;

  constructor(store: RedisStore | undefined, o: SharedTableOptions<V>) {
    this.store = store;
    this.o = o;
    this.local = new OwnedTable(o.what, o.max);
  }

  /**
   * Throws the refusal of `owner`'s next entry (503 TG_OVERLOADED: the table is full; 429 TG_CAP_REACHED: the owner
   * holds its share), before anything is done for it. With the store too: this replica's share bounds what one owner
   * writes to the store through it, so no caller fills the store (or, under an eviction policy, pushes out the
   * others' entries and counters).
   */
  assertRoom(owner: string): void {
    this.local.assertRoom(owner);
  }

  /** Writes `value` under `key` in the shared store for `ttlMs` unless a value is there already: true when written. */
  async claim(key: string, value: V, ttlMs: number): Promise<boolean> {
    const store = this.shared();
    try {
      return (await store.client.set(store.key(key), this.o.encode(value), 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK';
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  /** The value the shared store holds under `key` (whatever this replica holds). */
  async fetch(key: string): Promise<V | undefined> {
    const store = this.shared();
    let raw: string | null;
    try {
      raw = await store.client.get(store.key(key));
    } catch (err) {
      throw this.unavailable(err);
    }
    return this.read(key, raw);
  }

  /** The live value under `key`: this replica's, else (with the shared store) the store's. */
  async get(key: string): Promise<V | undefined> {
    const held = this.local.get(key);
    if (held !== undefined || this.store === undefined) return held;
    return this.fetch(key);
  }

  /**
   * `get` of each key, the ones this replica does not hold read with MGET (in a Redis Cluster the keys of one call
   * must share a hash tag: one slot).
   */
  async getMany(keys: readonly string[]): Promise<(V | undefined)[]> {
    const out = keys.map((k) => this.local.get(k));
    const store = this.store;
    if (store === undefined) return out;
    const missing = keys.flatMap((k, i) => (out[i] === undefined ? [i] : []));
    for (let at = 0; at < missing.length; at += BATCH) {
      const batch = missing.slice(at, at + BATCH);
      let raws: (string | null)[];
      try {
        raws = await store.client.mget(batch.map((i) => store.key(keys[i]!)));
      } catch (err) {
        throw this.unavailable(err);
      }
      batch.forEach((i, j) => (out[i] = this.read(keys[i]!, raws[j] ?? null)));
    }
    return out;
  }

  /** TG_STORE_UNAVAILABLE, for the feature's own commands on the store (its cause kept for the log). */
  unavailable(cause: unknown): GatewayError {
    return new GatewayError(Errors.STORE_UNAVAILABLE, this.o.unavailable, { cause });
  }

  private shared(): RedisStore {
    if (this.store === undefined) throw new Error(`${this.o.what}: no shared store`);
    return this.store;
  }

  private read(key: string, raw: string | null): V | undefined {
    const value = raw === null ? undefined : this.o.decode(raw);
    if (value !== undefined && this.o.cacheRead !== undefined) {
      const { owner, until } = this.o.cacheRead(value);
      this.local.add(key, owner, until, value);
    }
    return value;
  }
}
