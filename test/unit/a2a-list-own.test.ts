/**
 * The gateway's own ListTasks for an agent without one (src/protocols/a2a/list-own.ts) and the choice of the
 * interface a call is translated to (translationTarget): pure logic, the agent's tasks/get given as a lookup.
 * The end-to-end behaviour with real agents is in test/e2e/a2a-list-v03.test.ts and a2a-bindings.test.ts.
 */
import { describe, expect, test } from 'vitest';
import type { Task } from '@a2a-js/sdk';
import { GatewayError } from '../../src/core/errors.ts';
import { listOwnTasks } from '../../src/protocols/a2a/list-own.ts';
import { translationTarget } from '../../src/protocols/a2a/translate.ts';

function task(id: string, state: number, contextId = 'c', timestamp = '2026-12-06T00:00:00.000Z'): Task {
  return { id, contextId, status: { state, timestamp, message: undefined }, artifacts: [{ artifactId: 'a' }], history: [], metadata: undefined } as unknown as Task;
}

// Newest first, as TaskOwners.list gives them; t3 and t2 bound in the same millisecond.
const own = [
  { id: 't4', at: 40 },
  { id: 't3', at: 30 },
  { id: 't2', at: 30 },
  { id: 't1', at: 10 },
  { id: 'gone', at: 5 },
];
const agent = new Map([
  ['t4', task('t4', 2, 'x', '2026-12-06T00:00:04.000Z')],
  ['t3', task('t3', 3)],
  ['t2', task('t2', 3, 'x')],
  ['t1', task('t1', 2)],
]);
const get = async (id: string): Promise<Task | undefined> => agent.get(id);

function req(p: Record<string, unknown> = {}): never {
  return { tenant: '', contextId: '', status: 0, pageToken: '', statusTimestampAfter: undefined, ...p } as never;
}

describe('listOwnTasks', () => {
  test('every known task, newest first, artifacts left out unless asked for; a task the agent forgot is skipped', async () => {
    const r = await listOwnTasks(req(), own, get);
    expect(r.tasks.map((t) => t.id)).toEqual(['t4', 't3', 't2', 't1']);
    expect(r.tasks.every((t) => t.artifacts.length === 0)).toBe(true);
    expect(r).toMatchObject({ nextPageToken: '', pageSize: 50, totalSize: 4 });
    expect((await listOwnTasks(req({ includeArtifacts: true }), own, get)).tasks[0]!.artifacts).toHaveLength(1);
  });

  test('pages follow the cursor, also across tasks bound in the same millisecond', async () => {
    const seen: string[] = [];
    let pageToken = '';
    for (let i = 0; i < 5; i++) {
      const r = await listOwnTasks(req({ pageSize: 1, pageToken }), own, get);
      seen.push(...r.tasks.map((t) => t.id));
      pageToken = r.nextPageToken;
      if (pageToken === '') break;
    }
    expect(seen).toEqual(['t4', 't3', 't2', 't1']);
    // A task bound after the first page was read does not shift the next one.
    const first = await listOwnTasks(req({ pageSize: 2 }), own, get);
    const later = [{ id: 't5', at: 50 }, ...own];
    expect((await listOwnTasks(req({ pageSize: 2, pageToken: first.nextPageToken }), later, get)).tasks.map((t) => t.id)).toEqual(['t2', 't1']);
  });

  test('filters: status, contextId, statusTimestampAfter', async () => {
    expect((await listOwnTasks(req({ status: 2 }), own, get)).tasks.map((t) => t.id)).toEqual(['t4', 't1']);
    expect((await listOwnTasks(req({ contextId: 'x' }), own, get)).tasks.map((t) => t.id)).toEqual(['t4', 't2']);
    expect((await listOwnTasks(req({ statusTimestampAfter: '2026-12-06T00:00:01.000Z' }), own, get)).tasks.map((t) => t.id)).toEqual(['t4']);
  });

  test('bad parameters are invalid params (TG_INVALID_PARAMS), nothing fetched', async () => {
    let fetched = 0;
    const counting = async (id: string): Promise<Task | undefined> => {
      fetched++;
      return agent.get(id);
    };
    for (const p of [{ pageSize: 101 }, { pageSize: -1 }, { pageSize: 1.5 }, { status: -1 }, { historyLength: -2 }, { statusTimestampAfter: 'yesterday' }, { pageToken: 'bm9wZQ' }]) {
      const err = await listOwnTasks(req(p), own, counting).catch((e: unknown) => e);
      expect(err, JSON.stringify(p)).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).def.code).toBe('TG_INVALID_PARAMS');
    }
    expect(fetched).toBe(0);
  });
});

describe('translationTarget', () => {
  test("the other binding of the caller's version first, then the caller's binding, then the other, in the other version", () => {
    expect(translationTarget({ jsonrpc: { '1.0': '/rpc', '0.3': '/rpc' }, rest: {} }, 'rest', '1.0')).toEqual({ binding: 'jsonrpc', version: '1.0', path: '/rpc' });
    expect(translationTarget({ jsonrpc: { '1.0': '/rpc' }, rest: { '0.3': '/rest' } }, 'rest', '1.0')).toEqual({ binding: 'jsonrpc', version: '1.0', path: '/rpc' });
    expect(translationTarget({ jsonrpc: {}, rest: { '0.3': '/rest', '1.0': '/r1' } }, 'jsonrpc', '0.3')).toEqual({ binding: 'rest', version: '0.3', path: '/rest' });
    expect(translationTarget({ jsonrpc: { '1.0': '/rpc' }, rest: {} }, 'rest', '0.3')).toEqual({ binding: 'jsonrpc', version: '1.0', path: '/rpc' });
    expect(translationTarget({ jsonrpc: { '0.3': '/rpc' }, rest: { '1.0': '/rest' } }, 'jsonrpc', '1.0')).toEqual({ binding: 'rest', version: '1.0', path: '/rest' });
    expect(translationTarget({ jsonrpc: {}, rest: {} }, 'jsonrpc', '1.0')).toBeUndefined();
  });
});
