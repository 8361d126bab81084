/**
 * Which identity created each A2A task: only that identity may get, list, cancel, subscribe to it, continue it with
 * a message, or manage its push configs. Another identity gets TaskNotFound, the same answer as for a task that
 * does not exist (no existence leak), and so does everyone for a task the gateway never saw created.
 *
 * In memory (bounded, oldest forgotten first) on a single replica; in Redis with the shared store, so a task made
 * through one replica is usable through any other: `SET <prefix>a2a:task:{<agent>}:<task id> <principal> PX ttl NX`
 * (the first binding wins; an agent that reuses a task id for another caller cannot hand the task over). A store
 * that cannot answer fails closed (TG_STORE_UNAVAILABLE): no task is shown when ownership cannot be checked.
 */
import { Errors, GatewayError } from '../../core/errors.ts';
import type { RedisStore } from '../../store/redis.ts';

const MEMORY_MAX = 100_000;

export class TaskOwners {
  private readonly store: RedisStore | undefined;
  private readonly local = new Map<string, { owner: string; until: number }>();

  constructor(store: RedisStore | undefined) {
    this.store = store;
  }

  private key(agent: string, taskId: string): string {
    // The agent in a hash tag: one agent's tasks share a cluster slot (a page of ListTasks is one round of GETs).
    return `a2a:task:{${agent}}:${taskId}`;
  }

  /** Binds a task to the identity that created it (the first binding wins), here and in the shared store. */
  async bind(agent: string, taskId: string, owner: string, ttlMs: number): Promise<void> {
    this.bindLocal(agent, taskId, owner, ttlMs);
    if (this.store !== undefined) {
      try {
        await this.store.client.set(this.store.key(this.key(agent, taskId)), owner, 'PX', Math.max(1, ttlMs), 'NX');
      } catch (err) {
        throw unavailable(err);
      }
    }
  }

  /**
   * Binds in this replica's memory only, synchronously (a streamed event naming a new task is passed on only after
   * this, so the caller can never use the id here before it is bound); `bind` stores it for the other replicas.
   */
  bindLocal(agent: string, taskId: string, owner: string, ttlMs: number): void {
    const key = this.key(agent, taskId);
    if (this.local.has(key)) return;
    if (this.local.size >= MEMORY_MAX) {
      const oldest = this.local.keys().next().value;
      if (oldest !== undefined) this.local.delete(oldest);
    }
    this.local.set(key, { owner, until: Date.now() + ttlMs });
  }

  /** The identity that created the task, or undefined (unknown or expired). */
  async owner(agent: string, taskId: string): Promise<string | undefined> {
    const key = this.key(agent, taskId);
    const e = this.local.get(key);
    if (e !== undefined) {
      if (e.until > Date.now()) return e.owner;
      this.local.delete(key);
    }
    if (this.store === undefined) return undefined;
    try {
      return (await this.store.client.get(this.store.key(key))) ?? undefined;
    } catch (err) {
      throw unavailable(err);
    }
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

function unavailable(cause: unknown): GatewayError {
  return new GatewayError(Errors.STORE_UNAVAILABLE, 'The task store is unavailable; task ownership cannot be checked', { cause });
}
