/**
 * Relaying an agent's answer to the caller while learning what the gateway must know from it:
 *
 * - the ids of tasks a message created (bound to the caller before the caller can use them: a whole JSON answer is
 *   read first; in a stream, each event is read as it passes, and bound in this replica's memory at once);
 * - ListTasks pages filtered to the caller's own tasks;
 * - streams (SSE) are relayed by streams.ts, resumably (resume.ts).
 */

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
