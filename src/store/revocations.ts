/**
 * A set of revoked keys, each until an expiry (an MCP session ended with DELETE is revoked until its sealed id would
 * have expired anyway). Keys are fingerprints (keyed hashes), never the secrets themselves.
 *
 * Without Redis the set lives in this process. With the shared store (store/redis.ts) it holds across replicas:
 * - `revoke` writes `SET <prefix><ns>:<key> 1 PXAT <until>` and publishes the key, so replicas drop what they hold;
 * - `check` (a replica's first sight of a key) asks Redis (`EXISTS`), and throws when Redis cannot answer, so the
 *   caller fails closed;
 * - after the subscription was lost and re-established, `onResync` listeners re-check what they hold (a publication
 *   missed while disconnected is caught up).
 */
import { Cluster } from 'ioredis';
import type { Logger } from '../telemetry/logger.ts';
import type { RedisClient, RedisStore } from './redis.ts';

export class RevocationSet {
  private readonly local = new Map<string, number>();
  private readonly store: RedisStore | undefined;
  private readonly ns: string;
  private readonly log: Logger;
  private subscriber: RedisClient | undefined;
  private readonly revokedListeners = new Set<(key: string) => void>();
  private readonly resyncListeners = new Set<() => void>();
  private subscribedOnce = false;
  private sweepAt = 0;

  constructor(ns: string, log: Logger, store?: RedisStore) {
    this.ns = ns;
    this.log = log;
    this.store = store;
    if (store) this.subscribe(store);
  }

  /** True when the set is shared through Redis. */
  get shared(): boolean {
    return this.store !== undefined;
  }

  private redisKey(key: string): string {
    return this.store!.key(`${this.ns}:${key}`);
  }

  private get channel(): string {
    return this.store!.key(`${this.ns}:revoked`);
  }

  private subscribe(store: RedisStore): void {
    // Subscriber mode takes a connection of its own.
    const sub: RedisClient = store.client instanceof Cluster ? store.client.duplicate() : store.client.duplicate();
    this.subscriber = sub;
    sub.on('error', () => {}); // the store's own client reports connection problems
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const space = message.indexOf(' ');
      const key = space < 0 ? message : message.slice(0, space);
      const until = space < 0 ? NaN : Number(message.slice(space + 1));
      this.remember(key, Number.isFinite(until) ? until : Date.now() + 24 * 3_600_000);
      for (const l of this.revokedListeners) l(key);
    });
    sub.on('ready', () => {
      sub.subscribe(this.channel).then(
        () => {
          // A reconnect may have missed publications: holders re-check what they keep.
          if (this.subscribedOnce) for (const l of this.resyncListeners) l();
          this.subscribedOnce = true;
        },
        (err: unknown) => this.log.warn({ err: (err as Error).message }, 'revocations: subscribe failed'),
      );
    });
  }

  private remember(key: string, until: number): void {
    const now = Date.now();
    if (now >= this.sweepAt) {
      this.sweepAt = now + 60_000;
      for (const [k, u] of this.local) if (u <= now) this.local.delete(k);
    }
    const prior = this.local.get(key);
    if (prior === undefined || prior < until) this.local.set(key, until);
  }

  /** Revoked here (synchronous; what this replica knows). */
  isRevokedLocally(key: string): boolean {
    const until = this.local.get(key);
    return until !== undefined && until > Date.now();
  }

  /** Revokes `key` until `untilMs` (ms since epoch), here and, with Redis, on every replica. */
  async revoke(key: string, untilMs: number): Promise<void> {
    this.remember(key, untilMs);
    if (!this.store) return;
    const ttl = Math.max(1, untilMs - Date.now());
    await this.store.client.set(this.redisKey(key), '1', 'PX', ttl);
    await this.store.client.publish(this.channel, `${key} ${untilMs}`);
  }

  /** Whether `key` is revoked: locally known, or (with Redis) recorded there. Throws when Redis cannot answer. */
  async check(key: string): Promise<boolean> {
    if (this.isRevokedLocally(key)) return true;
    if (!this.store) return false;
    const n = await this.store.client.exists(this.redisKey(key));
    if (n > 0) this.remember(key, Date.now() + 60_000);
    return n > 0;
  }

  /** Called with each key another replica revoked. Returns the unsubscribe. */
  onRevoked(listener: (key: string) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  /** Called after the shared subscription came back (publications may have been missed). */
  onResync(listener: () => void): () => void {
    this.resyncListeners.add(listener);
    return () => this.resyncListeners.delete(listener);
  }

  async close(): Promise<void> {
    const sub = this.subscriber;
    this.subscriber = undefined;
    if (!sub) return;
    try {
      await sub.quit();
    } catch {
      sub.disconnect();
    }
  }
}
