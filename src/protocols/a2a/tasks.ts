/**
 * Which identity created each A2A task: only that identity may get, list, cancel, subscribe to it, continue it with
 * a message, or manage its push configs. Another identity gets TaskNotFound, the same answer as for a task that
 * does not exist (no existence leak), and so does everyone for a task the gateway never saw created.
 *
 * In memory on a single replica (bounded: a full table refuses new tasks, never forgets a live one); in Redis with
 * the shared store (src/store/shared-table.ts), so a task made through one replica is usable through any other:
 * `SET <prefix>a2a:task:{<agent>}:<task id> <principal> PX ttl NX` (the first binding wins; an agent that reuses a
 * task id for another caller cannot hand the task over). A store that cannot answer fails closed
 * (TG_STORE_UNAVAILABLE): no task is shown when ownership cannot be checked.
 */
import { Errors, GatewayError } from '../../core/errors.ts';
import type { RedisStore } from '../../store/redis.ts';
import { SharedTable } from '../../store/shared-table.ts';

const MEMORY_MAX = 100_000;
/** The newest tasks of one identity at one agent the gateway lists (ListTasks of a 0.3 agent: list-own.ts). */
export const LIST_MAX = 1_000;

/** How long a binding lasts, and whether the task is indexed for its owner's ListTasks (an agent without one). */
export interface Keep {
  readonly ttlMs: number;
  readonly listed: boolean;
}

/** A task bound to an identity, with when the gateway bound it (ms since the epoch). */
export interface OwnedTask {
  readonly id: string;
  readonly at: number;
}

export class TaskOwners {
  /** The owner of each task: this replica's bindings (without the shared store, the only record of them) and Redis. */
  private readonly table: SharedTable<string>;
  /** The tasks each identity created at each agent, in this replica (in the order bound, newest last). */
  private readonly byOwner = new Map<string, Map<string, number>>();
  private readonly max: number;
  /** Bindings of this replica the store has not confirmed yet (bind): look-ups of those tasks wait for the answer. */
  private readonly confirming = new Map<string, Promise<void>>();

  /** `max`: bindings (and owners' indexes) this replica holds in memory at most (tests make it small). */
  constructor(store: RedisStore | undefined, max = MEMORY_MAX) {
    this.max = max;
    this.table = new SharedTable(store, {
      what: 'A2A tasks',
      max,
      unavailable: 'The task store is unavailable; task ownership cannot be checked',
      encode: (owner) => owner,
      decode: (raw) => raw,
    });
  }

  /**
   * Without the shared store: refuses a message of `caller` that may create a task when its task could not be bound
   * (503 TG_OVERLOADED: the table is full; 429 TG_CAP_REACHED: the caller holds its share), before it is forwarded.
   */
  assertRoom(caller: string): void {
    this.table.assertRoom(caller);
  }

  private key(agent: string, taskId: string): string {
    // The agent in a hash tag: one agent's tasks share a cluster slot (a page of ListTasks is one round of GETs).
    return `a2a:task:{${agent}}:${taskId}`;
  }

  /**
   * Binds a task to the identity that created it (the first binding wins), here and in the shared store. This
   * replica's binding is made at once (bindLocal) and confirmed by the store: until the store answered, a look-up of
   * the task here waits for it; when another caller bound the task first (an agent reusing a task id, the first
   * binding made at another replica), or the store cannot answer, this replica's binding gives way (fail closed).
   */
  async bind(agent: string, taskId: string, owner: string, keep: Keep): Promise<void> {
    const key = this.key(agent, taskId);
    this.bindLocal(agent, taskId, owner, keep);
    if (this.table.store === undefined) return;
    const confirmed = this.confirm(agent, taskId, owner, keep);
    this.confirming.set(key, confirmed);
    try {
      await confirmed;
    } finally {
      if (this.confirming.get(key) === confirmed) this.confirming.delete(key);
    }
  }

  private async confirm(agent: string, taskId: string, owner: string, keep: Keep): Promise<void> {
    const store = this.table.store!;
    const key = this.key(agent, taskId);
    const ttl = Math.max(1, keep.ttlMs);
    try {
      if (!(await this.table.claim(key, owner, ttl))) {
        if ((await this.table.fetch(key)) !== owner) this.unbindLocal(agent, taskId, owner);
        return;
      }
    } catch (err) {
      this.unbindLocal(agent, taskId, owner);
      throw err;
    }
    // Indexed only for an agent that cannot list (the common case costs one SET, as before).
    if (!keep.listed) return;
    try {
      // The owner's index (a sorted set by binding time), trimmed to its newest LIST_MAX and to the live bindings.
      // Scored with the time bound here, so every replica lists (and pages) in the same order.
      const index = store.key(this.indexKey(agent, owner));
      const now = Date.now();
      const at = this.byOwner.get(`${agent}\u0000${owner}`)?.get(taskId) ?? now;
      await store.client.pipeline().zadd(index, at, taskId).zremrangebyscore(index, '-inf', now - ttl).zremrangebyrank(index, 0, -LIST_MAX - 1).pexpire(index, ttl).exec();
    } catch (err) {
      throw this.table.unavailable(err);
    }
  }

  /**
   * Binds in this replica's memory only, synchronously (a streamed event naming a new task is passed on only after
   * this, so the caller can never use the id here before it is bound); `bind` stores it for the other replicas.
   */
  bindLocal(agent: string, taskId: string, owner: string, keep: Keep): void {
    const key = this.key(agent, taskId);
    if (this.table.local.has(key)) return;
    // A full table never drops another caller's binding (its owner would lose the task): the newcomer is not bound
    // here (with the shared store it still is there; without it, assertRoom refused it before it was forwarded).
    if (!this.table.local.add(key, owner, Date.now() + keep.ttlMs, owner)) return;
    if (!keep.listed) return;
    const ownerKey = `${agent}\u0000${owner}`;
    let mine = this.byOwner.get(ownerKey);
    if (mine === undefined) {
      if (this.byOwner.size >= this.max) return;
      mine = new Map();
      this.byOwner.set(ownerKey, mine);
    }
    mine.set(taskId, Date.now());
    if (mine.size > LIST_MAX) mine.delete(mine.keys().next().value!);
  }

  private unbindLocal(agent: string, taskId: string, owner: string): void {
    const key = this.key(agent, taskId);
    if (this.table.local.get(key) === owner) this.table.local.delete(key);
    this.byOwner.get(`${agent}\u0000${owner}`)?.delete(taskId);
  }

  private indexKey(agent: string, owner: string): string {
    return `a2a:tasks:{${agent}}:${owner}`;
  }

  /**
   * The tasks `owner` created at `agent` that are still bound to it (this replica's and, with the shared store, every
   * replica's), newest first, at most LIST_MAX.
   */
  async list(agent: string, owner: string): Promise<OwnedTask[]> {
    const found = new Map<string, number>();
    for (const [id, at] of this.byOwner.get(`${agent}\u0000${owner}`) ?? []) {
      if (this.table.local.get(this.key(agent, id)) === owner) found.set(id, at);
    }
    const store = this.table.store;
    if (store !== undefined) {
      let flat: string[];
      try {
        flat = await store.client.zrevrange(store.key(this.indexKey(agent, owner)), 0, LIST_MAX - 1, 'WITHSCORES');
      } catch (err) {
        throw this.table.unavailable(err);
      }
      for (let i = 0; i + 1 < flat.length; i += 2) if (!found.has(flat[i]!)) found.set(flat[i]!, Number(flat[i + 1]));
    }
    const out = [...found].map(([id, at]) => ({ id, at }));
    out.sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    return out.slice(0, LIST_MAX);
  }

  /** The identity that created the task, or undefined (unknown or expired); after the store confirmed a new binding. */
  async owner(agent: string, taskId: string): Promise<string | undefined> {
    const key = this.key(agent, taskId);
    const confirming = this.confirming.get(key);
    if (confirming !== undefined) await confirming.catch(() => undefined);
    return this.table.get(key);
  }

  /** Refuses with TaskNotFound unless `caller` created the task. */
  async check(agent: string, taskId: string, caller: string): Promise<void> {
    if ((await this.owner(agent, taskId)) !== caller) throw taskNotFound(taskId);
  }

  /** For each task id, whether `caller` created it. */
  async mine(agent: string, taskIds: readonly string[], caller: string): Promise<boolean[]> {
    return Promise.all(taskIds.map(async (id) => (await this.owner(agent, id)) === caller));
  }
}

export function taskNotFound(taskId: string): GatewayError {
  return new GatewayError(Errors.A2A_TASK_NOT_FOUND, `Task ${taskId} not found`);
}
