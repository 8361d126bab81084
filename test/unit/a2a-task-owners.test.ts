/**
 * A2A task ownership and push relay hooks in one replica's memory (src/protocols/a2a/tasks.ts, push.ts; the
 * shared-store path is exercised end to end in test/e2e/a2a-replicas.test.ts): a full table refuses the newcomer and
 * never drops another caller's task or webhook.
 */
import { describe, expect, it } from 'vitest';
import { PushRelay } from '../../src/protocols/a2a/push.ts';
import { TaskOwners } from '../../src/protocols/a2a/tasks.ts';

const keep = { ttlMs: 60_000, listed: true };

describe('TaskOwners (one replica, no shared store)', () => {
  it('a full table refuses the newcomer before it is forwarded (503 TG_OVERLOADED); every owner keeps its task', async () => {
    // Each owner may hold all of this small table (the default share is a tenth of it).
    const owners = new TaskOwners(undefined, 2);
    owners.assertRoom('alice');
    await owners.bind('agent', 't-a', 'alice', keep);
    await owners.bind('agent', 't-b', 'bob', keep);
    // The attacker's next message is refused before it reaches the agent.
    expect(() => owners.assertRoom('mallory')).toThrow(expect.objectContaining({ code: 'TG_OVERLOADED' }));
    // A task that still appears (an agent naming one on its own) is not bound: its creator is the one refused.
    owners.bindLocal('agent', 't-m', 'mallory', keep);
    await expect(owners.check('agent', 't-m', 'mallory')).rejects.toMatchObject({ code: 'TG_A2A_TASK_NOT_FOUND' });
    await owners.check('agent', 't-a', 'alice');
    await owners.check('agent', 't-b', 'bob');
    expect((await owners.list('agent', 'alice')).map((t) => t.id)).toEqual(['t-a']);
    expect((await owners.list('agent', 'bob')).map((t) => t.id)).toEqual(['t-b']);
  });

  it('one caller holds at most its share (a tenth): it is refused 429 TG_CAP_REACHED, the others are not', async () => {
    const owners = new TaskOwners(undefined, 20);
    await owners.bind('agent', 't-1', 'mallory', keep);
    await owners.bind('agent', 't-2', 'mallory', keep);
    expect(() => owners.assertRoom('mallory')).toThrow(expect.objectContaining({ code: 'TG_CAP_REACHED' }));
    owners.bindLocal('agent', 't-3', 'mallory', keep);
    await expect(owners.check('agent', 't-3', 'mallory')).rejects.toMatchObject({ code: 'TG_A2A_TASK_NOT_FOUND' });
    owners.assertRoom('alice');
    await owners.bind('agent', 't-a', 'alice', keep);
    await owners.check('agent', 't-a', 'alice');
    await owners.check('agent', 't-1', 'mallory');
  });

  it('expired bindings make room', async () => {
    const owners = new TaskOwners(undefined, 1);
    await owners.bind('agent', 't-old', 'alice', { ttlMs: 1, listed: false });
    await new Promise((r) => setTimeout(r, 5));
    owners.assertRoom('bob');
    await owners.bind('agent', 't-new', 'bob', keep);
    await owners.check('agent', 't-new', 'bob');
    await expect(owners.check('agent', 't-old', 'alice')).rejects.toMatchObject({ code: 'TG_A2A_TASK_NOT_FOUND' });
  });
});

describe('PushRelay (webhooks the gateway stands in for)', () => {
  const who = (id: string) => ({ id, issuer: 'spiffe://corp.example' }) as never;
  it('a full table refuses the newcomer\'s webhook (503 TG_OVERLOADED); the registered ones keep being restored', async () => {
    const relay = new PushRelay(undefined, { maxHooks: 2 });
    const a = await relay.register('https://gw/a2a/agent', 'agent', 'https://alice.example/hook', who('alice'), 60_000, '1.0');
    const b = await relay.register('https://gw/a2a/agent', 'agent', 'https://bob.example/hook', who('bob'), 60_000, '1.0');
    await expect(relay.register('https://gw/a2a/agent', 'agent', 'https://mallory.example/hook', who('mallory'), 60_000, '1.0')).rejects.toMatchObject({ code: 'TG_OVERLOADED' });
    // Each caller sees its own URL again, never another caller's (an agent mixing up its callers' configs).
    expect(await relay.restore('agent', JSON.stringify({ a, b }), 'alice')).toBe(JSON.stringify({ a: 'https://alice.example/hook', b }));
    expect(await relay.restore('agent', JSON.stringify({ a, b }), 'bob')).toBe(JSON.stringify({ a, b: 'https://bob.example/hook' }));
    expect(await relay.restore('agent', JSON.stringify({ a, b }), 'mallory')).toBe(JSON.stringify({ a, b }));
    // Another agent's answer naming them gets nothing of the callers' URLs.
    expect(await relay.restore('other', JSON.stringify({ a, b }), 'alice')).toBe(JSON.stringify({ a, b }));
  });

  it('one caller holds at most its share (a tenth): it gets 429 TG_CAP_REACHED, another caller registers', async () => {
    const relay = new PushRelay(undefined, { maxHooks: 20 });
    await relay.register('https://gw/a2a/agent', 'agent', 'https://m.example/1', who('mallory'), 60_000, '1.0');
    await relay.register('https://gw/a2a/agent', 'agent', 'https://m.example/2', who('mallory'), 60_000, '1.0');
    await expect(relay.register('https://gw/a2a/agent', 'agent', 'https://m.example/3', who('mallory'), 60_000, '1.0')).rejects.toMatchObject({ code: 'TG_CAP_REACHED' });
    expect(await relay.register('https://gw/a2a/agent', 'agent', 'https://alice.example/hook', who('alice'), 60_000, '1.0')).toMatch(/\/push\//);
  });
});
