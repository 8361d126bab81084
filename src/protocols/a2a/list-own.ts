/**
 * ListTasks for an agent that speaks only A2A 0.3, which has no tasks/list: the gateway answers it from the tasks it
 * bound to the caller (tasks.ts: this identity's only, never another's), fetching each with the agent's tasks/get
 * (GetTask through the translation), with 1.0's filters (`contextId`, `status`, `statusTimestampAfter`),
 * `historyLength`, `includeArtifacts` (artifacts left out unless asked for) and pagination (`pageSize` 1..100, default
 * 50; `nextPageToken` an opaque cursor, empty on the last page).
 *
 * Differences from an agent's own list, by necessity: tasks are ordered by when the gateway bound them (newest
 * first), not by status timestamp (that would need every task fetched for each page); only the newest LIST_MAX tasks
 * of an identity are listed; a task the agent no longer knows is left out; `totalSize` counts the caller's tasks the
 * gateway knows less those this page ruled out (an upper bound when filters apply).
 */
import type { ListTasksRequest, ListTasksResponse, Task } from '@a2a-js/sdk';
import { Errors, GatewayError } from '../../core/errors.ts';
import type { OwnedTask } from './tasks.ts';

const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 100;

function invalid(message: string): GatewayError {
  return new GatewayError(Errors.INVALID_PARAMS, `Invalid params: ${message}`);
}

function token(t: OwnedTask): string {
  return Buffer.from(`${t.at}.${t.id}`).toString('base64url');
}

function cursorOf(pageToken: string): OwnedTask {
  const text = Buffer.from(pageToken, 'base64url').toString('utf8');
  const dot = text.indexOf('.');
  const at = Number(text.slice(0, dot));
  if (dot < 1 || !Number.isSafeInteger(at)) throw invalid('pageToken is not one this list gave');
  return { at, id: text.slice(dot + 1) };
}

/** Before `c` in the list's order (newest first, then id descending)? */
function after(t: OwnedTask, c: OwnedTask): boolean {
  return t.at < c.at || (t.at === c.at && t.id < c.id);
}

/**
 * One page of the caller's tasks. `own`: the caller's tasks, newest first (TaskOwners.list); `get`: the task from the
 * agent (undefined when the agent does not know it).
 */
export async function listOwnTasks(p: ListTasksRequest, own: readonly OwnedTask[], get: (id: string) => Promise<Task | undefined>): Promise<ListTasksResponse> {
  const pageSize = p.pageSize === undefined || p.pageSize === 0 ? DEFAULT_PAGE_SIZE : p.pageSize;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) throw invalid(`pageSize must be between 1 and ${MAX_PAGE_SIZE}`);
  if (p.status !== undefined && (!Number.isInteger(p.status) || p.status < 0)) throw invalid('status is not a task state');
  if (p.historyLength !== undefined && (!Number.isInteger(p.historyLength) || p.historyLength < 0)) throw invalid('historyLength must be a non-negative integer');
  const since = p.statusTimestampAfter ? Date.parse(p.statusTimestampAfter) : undefined;
  if (since !== undefined && Number.isNaN(since)) throw invalid('statusTimestampAfter must be an ISO 8601 timestamp');
  const keep = (t: Task): boolean =>
    (!p.contextId || t.contextId === p.contextId) &&
    (p.status === undefined || p.status === 0 || t.status?.state === p.status) &&
    (since === undefined || Date.parse(t.status?.timestamp ?? '') > since);
  let i = 0;
  if (p.pageToken) {
    const c = cursorOf(p.pageToken);
    i = own.findIndex((t) => after(t, c));
    if (i < 0) i = own.length;
  }
  const tasks: Task[] = [];
  let ruledOut = 0;
  while (i < own.length && tasks.length < pageSize) {
    const batch = own.slice(i, i + pageSize - tasks.length);
    i += batch.length;
    for (const task of await Promise.all(batch.map((t) => get(t.id)))) {
      if (task === undefined || !keep(task)) {
        ruledOut++;
        continue;
      }
      tasks.push(p.includeArtifacts === true ? task : { ...task, artifacts: [] });
    }
  }
  const more = i < own.length;
  return {
    tasks,
    nextPageToken: more ? token(own[i - 1]!) : '',
    pageSize,
    totalSize: own.length - ruledOut,
  };
}
