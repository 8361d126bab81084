/**
 * The pool's decisions (src/upstream/endpoint-pool.ts) with a controlled clock and random source: which endpoint a
 * pick returns, when an endpoint is ejected and for how long, what does not count against it, the circuit breaker.
 * The end-to-end behaviour through a gateway is in test/e2e/upstream-pools.test.ts.
 */
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { Errors, GatewayError } from '../../src/core/errors.ts';
import { outlierDetectionSpec } from '../../src/upstream/config.ts';
import { EndpointPool, PooledEndpoint, type Balancing } from '../../src/upstream/endpoint-pool.ts';
import { createLogger } from '../../src/telemetry/logger.ts';

const log = createLogger('silent');
const pools: EndpointPool[] = [];

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

function makePool(n: number, opts: { balancing?: Balancing; outlier?: Record<string, number>; maxRequests?: number; random?: () => number } = {}) {
  let now = 1_000_000;
  const endpoints = Array.from({ length: n }, (_, i) => {
    // Real undici pools that are never dialled: the pool only decides here.
    const connections = new Pool(`http://127.0.0.1:${10_000 + i}`);
    return new PooledEndpoint({ key: `http://127.0.0.1:${10_000 + i}`, basePath: '', dispatcher: connections, connections });
  });
  const pool = new EndpointPool({
    name: 'm',
    endpoints,
    balancing: opts.balancing ?? 'least-request',
    outlier: outlierDetectionSpec.parse(opts.outlier ?? {}),
    maxRequests: opts.maxRequests ?? 100,
    log,
    now: () => now,
    random: opts.random,
  });
  pools.push(pool);
  return { pool, endpoints, advance: (ms: number) => (now += ms) };
}

const ok = { answered: true, status: 200, ms: 1 };
const refused = { answered: false, error: new GatewayError(Errors.UPSTREAM_UNAVAILABLE), ms: 1 };

describe('balancing', () => {
  it('least-request picks the least busy endpoint, ties in turn', () => {
    const { pool, endpoints: [a, b, c] } = makePool(3);
    const picks = [pool.pick(1), pool.pick(1), pool.pick(1)];
    expect(new Set(picks).size).toBe(3);
    pool.release(b!, ok);
    expect(pool.pick(1)).toBe(b);
    expect([a, b, c].map((e) => e!.outstanding)).toEqual([1, 1, 1]);
  });

  it('power-of-two takes the less busy of two random draws, never the same endpoint twice', () => {
    const draws = [0.0, 0.0, 0.99, 0.5];
    const { pool, endpoints: [a, b, c] } = makePool(3, { balancing: 'power-of-two', random: () => draws.shift() ?? 0 });
    a!.outstanding = 5;
    // Draws a (index 0) and then index 0 of the rest, b: b is less busy.
    expect(pool.pick(1)).toBe(b);
    // Draws c (0.99 -> 2) and then index 1 of [a, b]: b (1 in flight now) against c (0): c.
    expect(pool.pick(1)).toBe(c);
  });

  it('a retry avoids the endpoint that failed when another is available', () => {
    const { pool, endpoints: [a, b] } = makePool(2);
    const first = pool.pick(1)!;
    pool.release(first, refused);
    const second = pool.pick(2, first);
    expect(second).not.toBe(first);
    expect([a, b]).toContain(second);
  });
});

describe('passive ejection', () => {
  it('ejects after consecutive failures, for base x 2^n up to the maximum, and brings it back after', () => {
    const { pool, endpoints: [a], advance } = makePool(2, { outlier: { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 3000, maxEjectionPercent: 50 } });
    const fail = (): void => {
      for (let i = 0; i < 3; i++) {
        a!.outstanding++;
        pool.release(a!, { answered: true, status: 503, ms: 1 });
      }
    };
    fail();
    expect(a!.state(0 + 1_000_000)).toBe('ejected');
    expect(pool.statuses()[0]).toMatchObject({ state: 'ejected', detail: 'status 503' });
    advance(999);
    expect(pool.statuses()[0]!.state).toBe('ejected');
    advance(1);
    expect(pool.statuses()[0]!.state).toBe('available');
    fail();
    advance(1999);
    expect(pool.statuses()[0]!.state).toBe('ejected');
    advance(1);
    fail();
    advance(2999); // capped at maxEjectionMs (4000 otherwise)
    expect(pool.statuses()[0]!.state).toBe('ejected');
    advance(1);
    expect(pool.statuses()[0]!.state).toBe('available');
  });

  it('a success in between resets the count; a client going away or a body over the limit never counts', () => {
    const { pool, endpoints: [a] } = makePool(2, { outlier: { consecutiveFailures: 2 } });
    const release = (r: Parameters<EndpointPool['release']>[1]): void => {
      a!.outstanding++;
      pool.release(a!, r);
    };
    release(refused);
    release(ok);
    release(refused);
    expect(pool.statuses()[0]!.state).toBe('available');
    release({ answered: false, error: new GatewayError(Errors.REQUEST_CANCELLED), ms: 1 });
    release({ answered: true, status: 200, error: new GatewayError(Errors.REQUEST_CANCELLED), ms: 1 });
    release({ answered: false, error: new GatewayError(Errors.PAYLOAD_TOO_LARGE), ms: 1 });
    release({ answered: true, status: 400, ms: 1 });
    expect(pool.statuses()[0]!.state).toBe('available');
    // A 200 whose body then broke (the forwarder reports its error) is a failure (the 400 above reset the count).
    release({ answered: true, status: 200, error: new GatewayError(Errors.UPSTREAM_TIMEOUT), ms: 1 });
    expect(pool.statuses()[0]!.state).toBe('available');
    release({ answered: true, status: 200, error: new GatewayError(Errors.UPSTREAM_UNAVAILABLE), ms: 1 });
    expect(pool.statuses()[0]!.state).toBe('ejected');
  });

  it('never ejects more than maxEjectionPercent of the pool, but always at least one endpoint', () => {
    const { pool, endpoints } = makePool(4, { outlier: { consecutiveFailures: 1, maxEjectionPercent: 50 } });
    for (const e of endpoints) {
      e.outstanding++;
      pool.release(e, refused);
    }
    expect(pool.statuses().filter((s) => s.state === 'ejected')).toHaveLength(2);
    const single = makePool(1, { outlier: { consecutiveFailures: 1, maxEjectionPercent: 0 } });
    single.endpoints[0]!.outstanding++;
    single.pool.release(single.endpoints[0]!, refused);
    expect(single.pool.statuses()[0]!.state).toBe('ejected');
    expect(single.pool.pick(1)).toBeUndefined();
    expect(single.pool.up()).toBe(false);
  });
});

describe('circuit breaker', () => {
  it('refuses the pick over maxRequests with TG_UPSTREAM_OVERLOADED, and admits again after a release', () => {
    const { pool } = makePool(2, { maxRequests: 2 });
    const a = pool.pick(1)!;
    pool.pick(1);
    expect(() => pool.pick(1)).toThrowError(expect.objectContaining({ code: 'TG_UPSTREAM_OVERLOADED' }));
    pool.release(a, ok);
    expect(pool.pick(1)).toBeDefined();
    expect(pool.outstanding).toBe(2);
  });
});

describe('affinity', () => {
  it('a key keeps its endpoint whatever the load; keys spread; only the keys of an endpoint that goes away move', () => {
    const { pool, endpoints } = makePool(3, { outlier: { consecutiveFailures: 1 } });
    const keys = Array.from({ length: 60 }, (_, i) => `seq-${i}`);
    const owner = new Map<string, PooledEndpoint>();
    for (const k of keys) {
      const e = pool.pick(1, undefined, k)! as PooledEndpoint;
      owner.set(k, e);
      // Left outstanding: least-request would now go elsewhere, affinity does not.
      expect(pool.pick(1, undefined, k)).toBe(e);
      pool.release(e, ok);
    }
    for (const e of endpoints) expect([...owner.values()].filter((o) => o === e).length).toBeGreaterThan(5);
    // The first endpoint is ejected: its keys move, the others stay.
    const gone = endpoints[0]!;
    pool.release(pool.pick(1, undefined, [...owner].find(([, e]) => e === gone)![0])!, refused);
    for (const k of keys) {
      const e = pool.pick(1, undefined, k)!;
      if (owner.get(k) === gone) expect(e).not.toBe(gone);
      else expect(e).toBe(owner.get(k));
      pool.release(e, ok);
    }
  });
});
