/**
 * Relaying an agent's answer to the caller while learning what the gateway must know from it:
 *
 * - the ids of tasks a message created (bound to the caller before the caller can use them: a whole JSON answer is
 *   read first; in a stream, each event is read as it passes, and bound in this replica's memory at once);
 * - ListTasks pages filtered to the caller's own tasks;
 * - streams (SSE) passed on whole event by whole event, exactly as the agent sent them, with keep-alive comments
 *   between events while the agent is silent (they are written only on event boundaries).
 */
import type { ServerResponse } from 'node:http';
import type { ChunkFilter } from '../../upstream/forwarder.ts';
import { eventData, SseFramer } from '../../wire/sse-frames.ts';

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * The task id an answer or stream event carries: 1.0 (`task`, `statusUpdate`, `artifactUpdate`, `message` members),
 * 0.3 (`kind: task` with `id`, or events with `taskId`), inside a JSON-RPC `result` or bare (REST).
 */
export function taskIdIn(payload: unknown): string | undefined {
  const top = obj(payload);
  if (top === undefined) return undefined;
  const p = 'jsonrpc' in top ? obj(top.result) : top;
  if (p === undefined) return undefined;
  const task = obj(p.task);
  if (task !== undefined) return str(task.id);
  for (const k of ['statusUpdate', 'artifactUpdate', 'message']) {
    const e = obj(p[k]);
    if (e !== undefined) return str(e.taskId);
  }
  if (p.kind === 'task') return str(p.id);
  if (p.kind === 'status-update' || p.kind === 'artifact-update' || p.kind === 'message') return str(p.taskId);
  return undefined;
}

/** The tasks of a ListTasks answer (JSON-RPC `result.tasks` or the REST body's `tasks`). */
export function listedTasks(payload: unknown): { holder: Record<string, unknown>; tasks: unknown[] } | undefined {
  const top = obj(payload);
  if (top === undefined) return undefined;
  const holder = 'jsonrpc' in top ? obj(top.result) : top;
  if (holder === undefined || !Array.isArray(holder.tasks)) return undefined;
  return { holder, tasks: holder.tasks as unknown[] };
}

/** Keeps only the tasks `keep` says are the caller's; the page's totals then count only those. */
export function filterTasks(payload: unknown, keep: readonly boolean[]): void {
  const listed = listedTasks(payload);
  if (listed === undefined) return;
  const kept = listed.tasks.filter((_, i) => keep[i] === true);
  listed.holder.tasks = kept;
  // The agent's total counts other callers' tasks: not told.
  if ('totalSize' in listed.holder) listed.holder.totalSize = kept.length;
}

/**
 * An SSE answer relayed whole event by whole event. `onTask` sees every task id an event names (synchronously,
 * before the event is passed on). Keep-alive comments go out while the agent is silent.
 */
export class EventRelay implements ChunkFilter {
  readonly sameBytes = false;
  private readonly framer = new SseFramer();
  private readonly onTask: ((taskId: string) => void) | undefined;
  private readonly frames: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastWrite = Date.now();
  /** Events relayed so far. */
  events = 0;

  constructor(onTask: ((taskId: string) => void) | undefined) {
    this.onTask = onTask;
  }

  /** Starts keep-alive comments on `res` every `ms` of silence (0: none). */
  keepAlive(res: ServerResponse, ms: number): void {
    if (ms <= 0) return;
    this.timer = setInterval(
      () => {
        if (Date.now() - this.lastWrite < ms || res.writableEnded || res.destroyed) return;
        this.lastWrite = Date.now();
        res.write(': keep-alive\n\n');
      },
      Math.max(10, Math.floor(ms / 2)),
    );
    this.timer.unref();
  }

  chunk(data: Buffer): Buffer | undefined {
    this.frames.length = 0;
    const out = this.framer.push(data, this.onTask === undefined ? undefined : this.frames);
    for (const f of this.frames) {
      this.events++;
      const text = eventData(f);
      if (text === undefined || this.onTask === undefined) continue;
      try {
        const id = taskIdIn(JSON.parse(text));
        if (id !== undefined) this.onTask(id);
      } catch {
        // Not JSON: relayed as it is, the client judges it.
      }
    }
    if (out !== undefined) this.lastWrite = Date.now();
    return out;
  }

  end(): Buffer | undefined {
    this.stop();
    return this.framer.take();
  }

  fail(): Buffer | undefined {
    this.stop();
    // A half event is never delivered; the stream breaks so the client sees it did not end cleanly.
    this.framer.take();
    return undefined;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
