import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigDir } from '../../src/config/load.ts';
import { backoffWithJitter, RedisStore } from '../../src/store/redis.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { redisSpec } from '../../src/store/config.ts';

// scripts/test.sh starts a Redis for the run and exports REDIS_URL; without it these tests fail (never skip).
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
const log = createLogger('silent');

function gatewayDir(redis: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-store-'));
  writeFileSync(join(dir, 'gateway.yaml'), `apiVersion: tollgate.dev/v1alpha1\nkind: Gateway\nmetadata: { name: gw }\nspec:\n  redis:\n${redis}`);
  return dir;
}

describe('shared Redis store', () => {
  const stores: RedisStore[] = [];
  afterAll(async () => {
    for (const s of stores) await s.close();
  });

  it('connects to the test Redis and serves commands under its key prefix', async () => {
    const store = new RedisStore(redisSpec.parse({ url: REDIS_URL, keyPrefix: 'tgtest:' }), process.cwd(), log);
    stores.push(store);
    await store.waitReady(5_000);
    expect(store.status()).toMatchObject({ mode: 'standalone', state: 'ready', ready: true });
    const key = store.key(`probe:${process.pid}`);
    expect(key.startsWith('tgtest:')).toBe(true);
    await store.client.set(key, 'v', 'PX', 5_000);
    expect(await store.client.get(key)).toBe('v');
  });

  it('fails a command at once while disconnected (no offline queue) and reports the state', async () => {
    // A port that accepts TCP but never speaks Redis: the connection never becomes ready.
    const silent: Server = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const store = new RedisStore(redisSpec.parse({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 200 }), process.cwd(), log);
    stores.push(store);
    const started = Date.now();
    await expect(store.client.get('x')).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(store.ready).toBe(false);
    await expect(store.waitReady(300)).rejects.toThrow(/not ready/);
    silent.close();
  });

  it('backs off exponentially with full jitter, bounded', () => {
    expect(backoffWithJitter(0, 50, 5_000, () => 0.999)).toBeLessThanOrEqual(50);
    expect(backoffWithJitter(3, 50, 5_000, () => 0.999)).toBe(399);
    expect(backoffWithJitter(30, 50, 5_000, () => 0.999)).toBeLessThanOrEqual(5_000);
    expect(backoffWithJitter(30, 50, 5_000, () => 0)).toBe(50);
  });

  it('refuses config with no mode, two modes, or a password inline in the URL', () => {
    const bad = ['    keyPrefix: "x:"\n', `    url: ${REDIS_URL}\n    cluster: { nodes: [{ host: 127.0.0.1 }] }\n`, '    url: redis://user:hunter2@127.0.0.1:6379\n'];
    const messages = bad.map((body) => {
      try {
        loadConfigDir(gatewayDir(body), {});
        return 'valid';
      } catch (err) {
        return err instanceof ConfigError ? err.issues.map((i) => `${i.line}:${i.message}`).join('; ') : String(err);
      }
    });
    expect(messages[0]).toMatch(/exactly one of url, sentinel or cluster/);
    expect(messages[1]).toMatch(/exactly one of url, sentinel or cluster/);
    expect(messages[2]).toMatch(/password in the URL is inline/);
    expect(messages.every((m) => /^\d+:/.test(m) && !m.startsWith('0:'))).toBe(true);
  });
});
