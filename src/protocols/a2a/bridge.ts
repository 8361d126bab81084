/**
 * The bridge of a translated call (translate.ts): the SDK request handler that the SDK's transport handler of the
 * caller's version calls, each call going to the agent through the SDK's client transport of the agent's version.
 * It binds the tasks the agent creates to the caller (a streamed task in this replica before its event is passed
 * on), checks the task ids the SDK decoded against their creator, and filters ListTasks to the caller's tasks.
 */
import type { AgentCard } from '@a2a-js/sdk';
import type { Transport } from '@a2a-js/sdk/client';
import type { A2ARequestHandler } from '@a2a-js/sdk/server';

export type Handler = Pick<A2ARequestHandler, keyof A2ARequestHandler>;

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The task an SDK result or stream event names (Task, Message, status or artifact update). */
function taskOf(v: unknown): string | undefined {
  const o = v as { $case?: string; value?: unknown; id?: unknown; taskId?: unknown; status?: unknown; messageId?: unknown } | undefined;
  if (o === undefined || o === null) return undefined;
  if (o.$case !== undefined) return taskOf(o.value);
  if ('payload' in (o as object)) return taskOf((o as { payload: unknown }).payload);
  if (o.messageId !== undefined) return str(o.taskId);
  if (o.status !== undefined && o.id !== undefined) return str(o.id);
  return str(o.taskId);
}

export interface Hooks {
  card(): Promise<AgentCard>;
  extended(raw: AgentCard): Promise<AgentCard>;
  bindLocal(taskId: string): void;
  bind(taskId: string): Promise<void>;
  mine(taskIds: readonly string[]): Promise<boolean[]>;
  /** Throws TaskNotFound unless the caller created every task named (as the SDK decoded the request). */
  owned(taskIds: readonly (string | undefined)[]): Promise<void>;
  /** ListTasks answered by the gateway (an agent without tasks/list: list-own.ts); undefined: the agent lists. */
  listOwn?: ((p: Parameters<Handler['listTasks']>[0]) => ReturnType<Handler['listTasks']>) | undefined;
}

/** The SDK request handler the transport handler of the caller's version calls: each call goes to the agent. */
export class Bridge implements Handler {
  private readonly t: Transport;
  private readonly hooks: Hooks;

  constructor(t: Transport, hooks: Hooks) {
    this.t = t;
    this.hooks = hooks;
  }

  getAgentCard(): Promise<AgentCard> {
    return this.hooks.card();
  }

  async getAuthenticatedExtendedAgentCard(p: Parameters<Handler['getAuthenticatedExtendedAgentCard']>[0]): Promise<AgentCard> {
    // The extended card is rewritten and filtered for the caller like the public one.
    return this.hooks.extended(await this.t.getExtendedAgentCard(p));
  }

  async sendMessage(p: Parameters<Handler['sendMessage']>[0]): ReturnType<Handler['sendMessage']> {
    await this.hooks.owned([p.message?.taskId, ...(p.message?.referenceTaskIds ?? [])]);
    const r = await this.t.sendMessage(p);
    const id = taskOf(r);
    if (id !== undefined) await this.hooks.bind(id);
    return r;
  }

  async *sendMessageStream(p: Parameters<Handler['sendMessageStream']>[0]): ReturnType<Handler['sendMessageStream']> {
    await this.hooks.owned([p.message?.taskId, ...(p.message?.referenceTaskIds ?? [])]);
    const pending: Promise<void>[] = [];
    try {
      for await (const e of this.t.sendMessageStream(p)) {
        const id = taskOf(e);
        if (id !== undefined) {
          this.hooks.bindLocal(id);
          pending.push(this.hooks.bind(id).catch(() => {}));
        }
        yield e;
      }
    } finally {
      await Promise.all(pending);
    }
  }

  async *resubscribe(p: Parameters<Handler['resubscribe']>[0]): ReturnType<Handler['resubscribe']> {
    await this.hooks.owned([p.id]);
    yield* this.t.resubscribeTask(p);
  }

  async getTask(p: Parameters<Handler['getTask']>[0]): ReturnType<Handler['getTask']> {
    await this.hooks.owned([p.id]);
    return this.t.getTask(p);
  }

  async cancelTask(p: Parameters<Handler['cancelTask']>[0]): ReturnType<Handler['cancelTask']> {
    await this.hooks.owned([p.id]);
    return this.t.cancelTask(p);
  }

  async listTasks(p: Parameters<Handler['listTasks']>[0]): ReturnType<Handler['listTasks']> {
    if (this.hooks.listOwn !== undefined) return this.hooks.listOwn(p);
    const r = await this.t.listTasks(p);
    const keep = await this.hooks.mine(r.tasks.map((x) => x.id));
    const tasks = r.tasks.filter((_, i) => keep[i] === true);
    return { ...r, tasks, totalSize: tasks.length };
  }

  async createTaskPushNotificationConfig(p: Parameters<Handler['createTaskPushNotificationConfig']>[0]): ReturnType<Handler['createTaskPushNotificationConfig']> {
    await this.hooks.owned([p.taskId]);
    return this.t.createTaskPushNotificationConfig(p);
  }

  async getTaskPushNotificationConfig(p: Parameters<Handler['getTaskPushNotificationConfig']>[0]): ReturnType<Handler['getTaskPushNotificationConfig']> {
    await this.hooks.owned([p.taskId]);
    return this.t.getTaskPushNotificationConfig(p);
  }

  async listTaskPushNotificationConfigs(p: Parameters<Handler['listTaskPushNotificationConfigs']>[0]): ReturnType<Handler['listTaskPushNotificationConfigs']> {
    await this.hooks.owned([p.taskId]);
    return this.t.listTaskPushNotificationConfig(p);
  }

  async deleteTaskPushNotificationConfig(p: Parameters<Handler['deleteTaskPushNotificationConfig']>[0]): ReturnType<Handler['deleteTaskPushNotificationConfig']> {
    await this.hooks.owned([p.taskId]);
    return this.t.deleteTaskPushNotificationConfig(p);
  }
}
