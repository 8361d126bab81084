/**
 * Tables shared by the replicas through the store (src/store/shared-table.ts): A2A push relay hooks (push.ts), A2A
 * task ownership (tasks.ts) and OpenAI stored responses (openai/owners.ts), each as two or three replicas would hold
 * it (one instance per replica, each with its own store connection) on a private real redis-server, which the tests
 * kill to see the store-failure path: a replica that does not hold an entry refuses with 503 TG_STORE_UNAVAILABLE and
 * never guesses. The HTTP side of it (the agent's notification refused, nothing delivered) is in
 * test/e2e/a2a-replicas.test.ts.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/core/call.ts';
import { PushRelay } from '../../src/protocols/a2a/push.ts';
import { TaskOwners } from '../../src/protocols/a2a/tasks.ts';
import { ResponseOwners } from '../../src/protocols/openai/owners.ts';
import { redisSpec } from '../../src/store/config.ts';
import { RedisStore } from '../../src/store/redis.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { eventually } from '../helpers/gateway.ts';
import { keysOn, startRedis, type RedisServer } from '../helpers/redis.ts';

const PREFIX = 'tgs:';
const BASE = 'https://gw.example/a2a/agent';
const ALICE: Principal = {
  id: 'spiffe://example.org/agents/alice',
  issuer: 'spiffe',
  trustDomain: 'example.org',
  path: '/agents/alice',
  segments: ['agents', 'alice'],
  claims: { team: 'blue', secret_claim: 'do-not-store' },
  expiresAt: Date.now() + 600_000,
};

let redis: RedisServer;
const stores: RedisStore[] = [];

/** One replica's store connection. */
async function replicaStore(): Promise<RedisStore> {
  const store = new RedisStore(redisSpec.parse({ url: redis.url, keyPrefix: PREFIX, commandTimeoutMs: 1_000 }), process.cwd(), createLogger('silent'));
  stores.push(store);
  await store.waitReady(5_000);
  return store;
}

/**
 * Every replica's store answers again after a restart of Redis: `ready` alone may still be the flag from before the
 * kill (the disconnect is seen asynchronously), so each connection must answer a PING.
 */
async function reconnected(): Promise<void> {
  await eventually(async () => (await Promise.all(stores.map((s) => s.ready && s.client.ping().then(() => true, () => false)))).every(Boolean), 15_000, 'the stores reconnected');
}

const tokenOf = (relay: string): string => relay.slice(relay.lastIndexOf('/') + 1);

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const s of stores) await s.close();
  await redis?.stop();
});

describe('PushRelay with the shared store', () => {
  it('a hook registered by one replica is found and restored by another; Redis holds a digest of the token, never the token, and no claims', async () => {
    const a = new PushRelay(await replicaStore());
    const b = new PushRelay(await replicaStore());
    const relay = await a.register(BASE, 'agent', 'https://alice.example/hook?x="1"', ALICE, 60_000, '1.0');
    const token = tokenOf(relay);
    expect(relay).toBe(`${BASE}/push/${token}`);
    expect(await b.lookup('agent', token)).toEqual({
      agent: 'agent',
      url: 'https://alice.example/hook?x="1"',
      version: '1.0',
      until: expect.any(Number),
      principal: { id: ALICE.id, issuer: 'spiffe', trustDomain: 'example.org', path: '/agents/alice', segments: ['agents', 'alice'], claims: {}, expiresAt: 0 },
    });
    // Another agent's route, or another token, finds nothing.
    expect(await b.lookup('other', token)).toBeUndefined();
    expect(await b.lookup('agent', 'A'.repeat(22))).toBeUndefined();
    // An answer of the agent naming the relay URL (JSON-escaped URL) gets the caller's URL back, at any replica.
    const answer = JSON.stringify({ configs: [{ url: relay }, { url: `${BASE}/push/${'B'.repeat(22)}` }] });
    expect(await b.restore('agent', answer, ALICE.id)).toBe(JSON.stringify({ configs: [{ url: 'https://alice.example/hook?x="1"' }, { url: `${BASE}/push/${'B'.repeat(22)}` }] }));
    // Another caller shown that relay URL (an agent mixing up its callers' configs) does not learn Alice's webhook.
    expect(await new PushRelay(await replicaStore()).restore('agent', answer, 'spiffe://example.org/agents/bob')).toBe(answer);
    expect(await new PushRelay(await replicaStore()).restore('other', answer, ALICE.id)).toBe(answer);
    const keys = keysOn(redis.port, `${PREFIX}a2a:push:*`);
    expect(keys).toEqual([`${PREFIX}a2a:push:{agent}:${createHash('sha256').update(token).digest('hex')}`]);
    const direct = stores[0]!.client;
    const value = (await direct.get(keys[0]!))!;
    expect(value).not.toContain(token);
    expect(value).not.toMatch(/claims|do-not-store|blue/);
    // The caller's webhook URL (it may carry the caller's own credential) is sealed: the store alone cannot read it.
    expect(value).not.toContain('alice.example');
    expect((JSON.parse(value) as { url: string }).url).toMatch(/^sealed:[A-Za-z0-9_-]+$/);
    expect(JSON.parse(value)).toMatchObject({ agent: 'agent', version: '1.0', principal: { id: ALICE.id } });
    const ttl = await direct.pttl(keys[0]!);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('with the store too, one caller holds at most its share of a replica\'s hooks (429 TG_CAP_REACHED): nobody fills the store through it', async () => {
    const relay = new PushRelay(await replicaStore(), { maxHooks: 20 });
    const MALLORY = { ...ALICE, id: 'spiffe://example.org/agents/mallory' };
    await relay.register(BASE, 'agent', 'https://m.example/1', MALLORY, 60_000, '1.0');
    await relay.register(BASE, 'agent', 'https://m.example/2', MALLORY, 60_000, '1.0');
    const before = keysOn(redis.port, `${PREFIX}a2a:push:*`).length;
    await expect(relay.register(BASE, 'agent', 'https://m.example/3', MALLORY, 60_000, '1.0')).rejects.toMatchObject({ code: 'TG_CAP_REACHED' });
    expect(keysOn(redis.port, `${PREFIX}a2a:push:*`)).toHaveLength(before);
    expect(await relay.register(BASE, 'agent', 'https://alice.example/hook', ALICE, 60_000, '1.0')).toMatch(/\/push\//);
  });

  it('a value in the store that is not a hook is no hook (404), not a crash', async () => {
    const b = new PushRelay(await replicaStore());
    const token = 'C'.repeat(22);
    const key = `${PREFIX}a2a:push:{agent}:${createHash('sha256').update(token).digest('hex')}`;
    await stores[0]!.client.set(key, '{"agent":"agent","url":5}', 'PX', 60_000);
    expect(await b.lookup('agent', token)).toBeUndefined();
    // A URL in the clear, or one sealed under another token, was not written by the gateway: no hook either.
    const hook = { agent: 'agent', version: '1.0', until: Date.now() + 60_000, principal: null };
    await stores[0]!.client.set(key, JSON.stringify({ ...hook, url: 'https://evil.example/hook' }), 'PX', 60_000);
    expect(await new PushRelay(await replicaStore()).lookup('agent', token)).toBeUndefined();
    const other = await new PushRelay(await replicaStore()).register(BASE, 'agent', 'https://x.example/h', ALICE, 60_000, '1.0');
    const sealed = JSON.parse((await stores[0]!.client.get(`${PREFIX}a2a:push:{agent}:${createHash('sha256').update(tokenOf(other)).digest('hex')}`))!) as { url: string };
    await stores[0]!.client.set(key, JSON.stringify({ ...hook, url: sealed.url }), 'PX', 60_000);
    expect(await new PushRelay(await replicaStore()).lookup('agent', token)).toBeUndefined();
  });

  it('Redis stopped: a replica that does not hold the hook refuses (503 TG_STORE_UNAVAILABLE), restores nothing and registers nothing; the replicas that hold it answer from memory', async () => {
    const a = new PushRelay(await replicaStore());
    const b = new PushRelay(await replicaStore());
    const fresh = new PushRelay(await replicaStore());
    const relay = await a.register(BASE, 'agent', 'https://alice.example/hook', ALICE, 60_000, '1.0');
    const token = tokenOf(relay);
    // B read it once (kept in its memory until the hook expires).
    expect((await b.lookup('agent', token))?.url).toBe('https://alice.example/hook');
    await redis.kill();
    try {
      const unavailable = { code: 'TG_STORE_UNAVAILABLE', def: expect.objectContaining({ status: 503 }) };
      await expect(fresh.lookup('agent', token)).rejects.toMatchObject(unavailable);
      await expect(fresh.restore('agent', JSON.stringify({ url: relay }), ALICE.id)).rejects.toMatchObject(unavailable);
      await expect(fresh.register(BASE, 'agent', 'https://alice.example/other', ALICE, 60_000, '1.0')).rejects.toMatchObject(unavailable);
      // A text naming no relay URL needs no store.
      expect(await fresh.restore('agent', '{"configs":[]}', ALICE.id)).toBe('{"configs":[]}');
      expect((await a.lookup('agent', token))?.url).toBe('https://alice.example/hook');
      expect((await b.lookup('agent', token))?.url).toBe('https://alice.example/hook');
      expect(await b.restore('agent', JSON.stringify({ url: relay }), ALICE.id)).toBe(JSON.stringify({ url: 'https://alice.example/hook' }));
    } finally {
      await redis.restart();
    }
    // Redis came back empty (no persistence): the fresh replica finds no hook, and says so (404), never a guess.
    await reconnected();
    expect(await fresh.lookup('agent', token)).toBeUndefined();
  });
});

describe('task and response ownership with the shared store', () => {
  const keep = { ttlMs: 60_000, listed: false };
  const where = { backend: 'vllm', model: 'llama', upstream: 'meta/llama' };

  it('a task bound through one replica is its creator\'s at another; the first binding wins; a store that cannot answer fails closed', async () => {
    const a = new TaskOwners(await replicaStore());
    const b = new TaskOwners(await replicaStore());
    await a.bind('agent', 't-1', 'alice', keep);
    await b.check('agent', 't-1', 'alice');
    await expect(b.check('agent', 't-1', 'bob')).rejects.toMatchObject({ code: 'TG_A2A_TASK_NOT_FOUND' });
    // An agent reusing the id for another caller does not hand the task over: not at a replica that asks the store,
    // and not at the replica that bound it for the second caller either (its own binding gives way to the store's).
    await b.bind('agent', 't-1', 'bob', { ttlMs: 60_000, listed: true });
    await new TaskOwners(await replicaStore()).check('agent', 't-1', 'alice');
    await expect(b.check('agent', 't-1', 'bob')).rejects.toMatchObject({ code: 'TG_A2A_TASK_NOT_FOUND' });
    await b.check('agent', 't-1', 'alice');
    expect(await b.list('agent', 'bob')).toEqual([]);
    // The same, asked before the store answered: the look-up waits for the store's word (the binding is made here at
    // once, as calls.ts does before the agent's answer goes out).
    await a.bind('agent', 't-2', 'alice', keep);
    b.bindLocal('agent', 't-2', 'bob', keep);
    const binding = b.bind('agent', 't-2', 'bob', keep);
    await expect(b.check('agent', 't-2', 'bob')).rejects.toMatchObject({ code: 'TG_A2A_TASK_NOT_FOUND' });
    await binding;
    await redis.kill();
    try {
      await expect(new TaskOwners(stores.at(-1)).check('agent', 't-1', 'alice')).rejects.toMatchObject({ code: 'TG_STORE_UNAVAILABLE' });
      await a.check('agent', 't-1', 'alice');
      // A binding the store could not confirm gives way here too (fail closed): nobody holds the task on a guess.
      b.bindLocal('agent', 't-3', 'carol', keep);
      await expect(b.bind('agent', 't-3', 'carol', keep)).rejects.toMatchObject({ code: 'TG_STORE_UNAVAILABLE' });
    } finally {
      await redis.restart();
    }
    await reconnected();
    await expect(b.check('agent', 't-3', 'carol')).rejects.toMatchObject({ code: 'TG_A2A_TASK_NOT_FOUND' });
  });

  it('a response bound through one replica is reachable at another; another identity cannot take it over; a store that cannot answer fails closed', async () => {
    const a = new ResponseOwners(await replicaStore());
    const b = new ResponseOwners(await replicaStore());
    expect(await a.bind('resp_1', { owner: 'alice', ...where })).toBe(true);
    expect(await b.bind('resp_1', { owner: 'mallory', ...where })).toBe(false);
    expect(await b.check('resp_1', 'alice')).toEqual({ owner: 'alice', ...where });
    await expect(b.check('resp_1', 'mallory')).rejects.toMatchObject({ code: 'TG_RESPONSE_NOT_FOUND' });
    await redis.kill();
    try {
      await expect(new ResponseOwners(stores.at(-1)).check('resp_1', 'alice')).rejects.toMatchObject({ code: 'TG_STORE_UNAVAILABLE' });
      await expect(new ResponseOwners(stores.at(-1)).bind('resp_2', { owner: 'alice', ...where })).rejects.toMatchObject({ code: 'TG_STORE_UNAVAILABLE' });
    } finally {
      await redis.restart();
    }
    await reconnected();
  });
});
