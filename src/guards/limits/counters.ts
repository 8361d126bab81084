/**
 * Where counters live: Redis (the shared RedisStore connection; one EVALSHA per decision, EVAL on NOSCRIPT) or this process's memory. Both run the same algorithm.
 */
import { createHash } from 'node:crypto';
import { Command, type Cluster } from 'ioredis';
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

/**
 * A command ioredis never times out itself: the caller races it against its own timer, so a reply that arrives after
 * the caller gave up is still seen (ioredis's commandTimeout rejects the promise and then drops the late reply).
 */
class UntimedCommand extends Command {
  /** ioredis's commandTimeout is replaced by a long wait for a late reply (a half-open connection must not hold it forever). */
  override setTimeout(): void {
    super.setTimeout(LATE_REPLY_WAIT_MS);
  }
  override extendTimeout(): void {}
}

/** How long a command that timed out for its caller may still be answered (its late reply is still used). */
const LATE_REPLY_WAIT_MS = 30_000;

/** Budget reservations a timed-out decision applied after all: given back by the caller (deferred settle). */
export type LateReservations = (adjustments: Adjustment[]) => void;

const DECIDE_LUA = decideScript('server');
const DECIDE_SHA = createHash('sha1').update(DECIDE_LUA).digest('hex');
const SETTLE_SHA = createHash('sha1').update(SETTLE_SCRIPT).digest('hex');

/** A settle still in flight past the command timeout: not failed, not to be sent again. */
export class SettlePending extends Error {
  constructor() {
    super('settle timed out (still in flight)');
  }
}

export class RedisCounterStore implements CounterStore {
  readonly kind = 'redis' as const;
  readonly prefix: string;
  private readonly store: RedisStore;
  private readonly client: RedisClient;
  /** Redis TIME minus the local clock, from the last decision (ms). */
  private offsetMs = 0;
  private readonly onLate: LateReservations;
  private readonly onUnapplied: LateReservations;

  /**
   * `onLate`: reservations a timed-out decision applied after all, to give back. `onUnapplied`: adjustments of a
   * settle that failed after its timeout (never applied), to send again when the store is back.
   */
  constructor(store: RedisStore, onLate: LateReservations = () => {}, onUnapplied: LateReservations = () => {}) {
    this.store = store;
    this.onLate = onLate;
    this.onUnapplied = onUnapplied;
    this.prefix = store.prefix;
    this.client = store.client;
  }

  get available(): boolean {
    return this.store.ready;
  }

  /**
   * One EVALSHA, timed out after the store's command timeout by this method rather than by ioredis: when the timer
   * wins, the limits' fail modes apply, and if Redis still answers later with an admitted verdict, the budget
   * reservations it applied are handed to `onLate` to be given back (a refused call is never charged). A late
   * admitted rate token stays spent (the safe side: at most one token per timed-out decision).
   */
  decide(ops: readonly Op[]): Promise<Verdict> {
    const { keys, argv } = scriptArgs(ops);
    const sent = this.evalScript(DECIDE_SHA, DECIDE_LUA, keys, argv);
    return this.withDeadline(sent, () => {
      sent.then(
        (reply) => {
          let verdict: Verdict;
          try {
            verdict = parseReply(reply, ops.length);
          } catch {
            return;
          }
          if (!verdict.admitted) return;
          const back: Adjustment[] = [];
          // A budget lease's extra units were reserved too (granted): all of it goes back.
          ops.forEach((op, i) => {
            const units = Math.max(op.kind === 'b' ? op.amount : 0, verdict.results[i]?.granted ?? 0);
            if (op.kind === 'b' && units > 0) back.push({ key: op.key, delta: -units });
          });
          if (back.length > 0) this.onLate(back);
        },
        () => {},
      );
      return new Error('Command timed out');
    }).then((reply) => {
      const verdict = parseReply(reply, ops.length);
      this.offsetMs = verdict.nowUs / 1000 - Date.now();
      return verdict;
    });
  }

  /** Races a command against the store's command timeout; `onTimeout` makes the error (and may watch the command). */
  private withDeadline<T>(sent: Promise<T>, onTimeout: () => Error): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), this.store.commandTimeoutMs);
    });
    return Promise.race([sent, deadline]).finally(() => clearTimeout(timer));
  }

  /** EVALSHA of a script, loading it with EVAL when this connection's Redis does not know it (never timed out by ioredis). */
  private evalScript(sha: string, lua: string, keys: readonly string[], argv: readonly string[]): Promise<unknown> {
    const send = (name: 'evalsha' | 'eval'): Promise<unknown> => {
      const cmd = new UntimedCommand(name, [name === 'evalsha' ? sha : lua, keys.length, ...keys, ...argv]);
      return (this.client as unknown as { sendCommand(c: Command): Promise<unknown> }).sendCommand(cmd);
    };
    return send('evalsha').catch((err: unknown) => {
      if (err instanceof Error && err.message.includes('NOSCRIPT')) return send('eval');
      throw err;
    });
  }

  /**
   * Applies adjustments. A settle is not idempotent, so it is never sent twice: past the command timeout the returned
   * promise rejects with SettlePending while the command stays in flight; if it then fails (the connection closed
   * before Redis answered, or no answer in 30 s), the adjustments go to `onUnapplied`, to be sent again when the
   * store is back. A late success needs nothing more.
   */
  settle(adjustments: readonly Adjustment[]): Promise<void> {
    const keys = adjustments.map((a) => a.key);
    const deltas = adjustments.map((a) => String(a.delta));
    const sent = this.evalScript(SETTLE_SHA, SETTLE_SCRIPT, keys, deltas);
    return this.withDeadline(sent, () => {
      sent.then(
        () => {},
        () => this.onUnapplied([...adjustments]),
      );
      return new SettlePending();
    }).then(() => {});
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
