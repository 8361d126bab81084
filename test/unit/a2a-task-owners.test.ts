/**
 * A2A task ownership in one replica's memory (src/protocols/a2a/tasks.ts; the shared-store path is exercised end to
 * end in test/e2e/a2a-replicas.test.ts): a full table refuses the newcomer and never drops another caller's task.
 */
import { describe, expect, it } from 'vitest';
import { TaskOwners } from '../../src/protocols/a2a/tasks.ts';

const keep = { ttlMs: 60_000, listed: true };

describe('TaskOwners (one replica, no shared store)', () => {
  it('a full table refuses the newcomer before it is forwarded (503 TG_OVERLOADED); every owner keeps its task', async () => {
    const owners = new TaskOwners(undefined, 2);
    owners.assertRoom();
    await owners.bind('agent', 't-a', 'alice', keep);
    await owners.bind('agent', 't-b', 'bob', keep);
    // The attacker's next message is refused before it reaches the agent.
    expect(() => owners.assertRoom()).toThrow(expect.objectContaining({ code: 'TG_OVERLOADED' }));
    // A task that still appears (an agent naming one on its own) is not bound: its creator is the one refused.
    owners.bindLocal('agent', 't-m', 'mallory', keep);
    await expect(owners.check('agent', 't-m', 'mallory')).rejects.toMatchObject({ code: 'TG_A2A_TASK_NOT_FOUND' });
    await owners.check('agent', 't-a', 'alice');
    await owners.check('agent', 't-b', 'bob');
    expect((await owners.list('agent', 'alice')).map((t) => t.id)).toEqual(['t-a']);
    expect((await owners.list('agent', 'bob')).map((t) => t.id)).toEqual(['t-b']);
  });

  it('expired bindings make room', async () => {
    const owners = new TaskOwners(undefined, 1);
    await owners.bind('agent', 't-old', 'alice', { ttlMs: 1, listed: false });
    await new Promise((r) => setTimeout(r, 5));
    owners.assertRoom();
    await owners.bind('agent', 't-new', 'bob', keep);
    await owners.check('agent', 't-new', 'bob');
    await expect(owners.check('agent', 't-old', 'alice')).rejects.toMatchObject({ code: 'TG_A2A_TASK_NOT_FOUND' });
  });
});
