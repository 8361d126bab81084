/**
 * Where counters live: Redis (the shared RedisStore connection; one EVALSHA per decision through ioredis
 * defineCommand, which falls back to EVAL on NOSCRIPT) or this process's memory. Both run the same algorithm.
 */
import type { Cluster } from 'ioredis';
import type { RedisClient, RedisStore } from '../../store/redis.ts';
import { MemoryCounters, type Adjustment, type Op, type Verdict } from './decide.ts';
import { decideScript, parseReply, scriptArgs, SETTLE_SCRIPT } from './lua.ts';

export interface CounterStore {
  readonly kind: 'redis' | 'memory';
  /** Key prefix (the Redis store's `keyPrefix`; `mem:` in memory). */
  readonly prefix: string;
  /** False when a decision cannot be attempted now (Redis not connected): fail modes apply without waiting. */
  readonly available: boolean;
  /** Decides and applies atomically. Synchronous in memory. Throws / rejects when the store cannot answer. */
  decide(ops: readonly Op[]): Verdict | Promise<Verdict>;
  settle(adjustments: readonly Adjustment[]): void | Promise<void>;
  /** The store's clock (Redis TIME, learned from decisions), unix ms: budget windows follow it. */
  nowMs(): number;
  /** Current values of counters (undefined: absent). */
  read(keys: readonly string[]): Promise<Array<number | undefined>>;
  /** Keys matching a glob, at most `max` (every master of a Cluster). */
  scan(pattern: string, max: number): Promise<string[]>;
}

export class MemoryCounterStore implements CounterStore {
  readonly kind = 'memory' as const;
  readonly prefix = 'mem:';
  readonly available = true;
  readonly counters: MemoryCounters;

  constructor(counters = new MemoryCounters()) {
    this.counters = counters;
  }

  decide(ops: readonly Op[]): Verdict {
    return this.counters.decide(ops);
  }

  settle(adjustments: readonly Adjustment[]): void {
    this.counters.settle(adjustments);
  }

  nowMs(): number {
    return Date.now();
  }

  async read(keys: readonly string[]): Promise<Array<number | undefined>> {
    return keys.map((k) => this.counters.get(k));
  }

  async scan(pattern: string, max: number): Promise<string[]> {
    const re = globToRegExp(pattern);
    return this.counters.keys('', Number.MAX_SAFE_INTEGER).filter((k) => re.test(k)).slice(0, max);
  }
}

/** Redis glob (only `*` is used by our patterns; everything else in them is literal). */
function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

interface ScriptedClient {
  tollgateLimitDecide(numKeys: number, ...args: string[]): Promise<unknown>;
  tollgateLimitSettle(numKeys: number, ...args: string[]): Promise<unknown>;
}

export class RedisCounterStore implements CounterStore {
  readonly kind = 'redis' as const;
  readonly prefix: string;
  private readonly store: RedisStore;
  private readonly client: RedisClient & ScriptedClient;
  /** Redis TIME minus the local clock, from the last decision (ms). */
  private offsetMs = 0;

  constructor(store: RedisStore) {
    this.store = store;
    this.prefix = store.prefix;
    const client = store.client as RedisClient & Partial<ScriptedClient>;
    // numberOfKeys left out: every decision passes its own key count (ioredis then reads it from the first argument).
    if (client.tollgateLimitDecide === undefined) client.defineCommand('tollgateLimitDecide', { lua: decideScript('server') });
    if (client.tollgateLimitSettle === undefined) client.defineCommand('tollgateLimitSettle', { lua: SETTLE_SCRIPT });
    this.client = client as RedisClient & ScriptedClient;
  }

  get available(): boolean {
    return this.store.ready;
  }

  async decide(ops: readonly Op[]): Promise<Verdict> {
    const { keys, argv } = scriptArgs(ops);
    const reply = await this.client.tollgateLimitDecide(keys.length, ...keys, ...argv);
    const verdict = parseReply(reply, ops.length);
    this.offsetMs = verdict.nowUs / 1000 - Date.now();
    return verdict;
  }

  async settle(adjustments: readonly Adjustment[]): Promise<void> {
    await this.client.tollgateLimitSettle(adjustments.length, ...adjustments.map((a) => a.key), ...adjustments.map((a) => String(a.delta)));
  }

  nowMs(): number {
    return Date.now() + this.offsetMs;
  }

  async read(keys: readonly string[]): Promise<Array<number | undefined>> {
    // One GET per key: keys of different tags may live on different Cluster shards (MGET would be CROSSSLOT).
    const values = await Promise.all(keys.map((k) => this.client.get(k)));
    return values.map((v) => (v === null ? undefined : Number(v)));
  }

  async scan(pattern: string, max: number): Promise<string[]> {
    const nodes = this.store.mode === 'cluster' ? (this.client as Cluster).nodes('master') : [this.client as Exclude<RedisClient, Cluster>];
    const out: string[] = [];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        for (const k of found) if (out.length < max) out.push(k);
      } while (cursor !== '0' && out.length < max);
    }
    return out;
  }
}
