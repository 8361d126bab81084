/**
 * The one Redis connection of a gateway process, shared by every feature that keeps cross-replica state (limits,
 * session revocation, A2A task ownership). Built from the Gateway's `redis` section (store/config.ts).
 *
 * Failure behaviour is the same for every user and chosen for a request path: no offline queue (a command sent
 * while disconnected fails at once instead of waiting), a short per-command timeout, and reconnects with
 * exponential backoff and full jitter so a fleet of replicas does not hammer a Redis that is coming back.
 * Each feature decides what a failed command means for a call (fail open or closed); this module only reports.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { resolveSecret } from '../config/load.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { RedisSpec } from './config.ts';

export type RedisClient = Redis | Cluster;

export interface StoreStatus {
  readonly mode: 'standalone' | 'sentinel' | 'cluster';
  /** ioredis connection status: `ready` when commands are served. */
  readonly state: string;
  readonly ready: boolean;
  /** Last connection error seen (message only: never credentials). */
  readonly lastError?: string | undefined;
  readonly since: string;
}

/** Exponential backoff from minMs to maxMs with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"). */
export function backoffWithJitter(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.max(minMs, Math.floor(random() * ceiling));
}

export class RedisStore {
  readonly client: RedisClient;
  /** Prefix of every key written (config `keyPrefix`). */
  readonly prefix: string;
  readonly mode: StoreStatus['mode'];
  /** The per-command timeout (ms) ioredis applies; callers that handle late replies apply it themselves. */
  readonly commandTimeoutMs: number;
  private lastError: string | undefined;
  private since = new Date().toISOString();
  private readonly log: Logger;

  constructor(spec: RedisSpec, configDir: string, log: Logger, env: NodeJS.ProcessEnv = process.env) {
    this.log = log;
    this.prefix = spec.keyPrefix;
    this.commandTimeoutMs = spec.commandTimeoutMs;
    const secret = (ref: { valueFrom: Parameters<typeof resolveSecret>[0] } | undefined): string | undefined => {
      if (!ref) return undefined;
      const r = resolveSecret(ref.valueFrom, configDir, env);
      if ('error' in r) throw new Error(`redis: ${r.error}`);
      return r.value;
    };
    const password = secret(spec.password);
    const retry = (times: number): number => backoffWithJitter(times, spec.reconnect.minMs, spec.reconnect.maxMs);
    const common: RedisOptions = {
      username: spec.username,
      password,
      commandTimeout: spec.commandTimeoutMs,
      connectTimeout: spec.connectTimeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Ready check runs INFO before the first command: keeps early commands from racing the handshake.
      enableReadyCheck: true,
      ...(spec.tls ? { tls: {} } : {}),
    };
    if (spec.cluster) {
      this.mode = 'cluster';
      const options: ClusterOptions = {
        redisOptions: { ...common },
        clusterRetryStrategy: retry,
        enableOfflineQueue: false,
        enableReadyCheck: true,
        scaleReads: 'master',
      };
      this.client = new Cluster(spec.cluster.nodes, options);
    } else if (spec.sentinel) {
      this.mode = 'sentinel';
      this.client = new Redis({
        ...common,
        sentinels: spec.sentinel.nodes,
        name: spec.sentinel.name,
        sentinelPassword: secret(spec.sentinel.password),
        retryStrategy: retry,
        sentinelRetryStrategy: retry,
      });
    } else {
      this.mode = 'standalone';
      this.client = new Redis(spec.url!, { ...common, retryStrategy: retry });
    }
    this.client.on('error', (err: Error) => {
      const message = err.message;
      if (message !== this.lastError) this.log.warn({ err: message, mode: this.mode }, 'redis connection error');
      this.lastError = message;
    });
    this.client.on('ready', () => {
      if (this.lastError !== undefined) this.log.info({ mode: this.mode }, 'redis connection recovered');
      this.lastError = undefined;
      this.since = new Date().toISOString();
    });
    this.client.on('end', () => {
      this.since = new Date().toISOString();
    });
  }

  /** True when commands can be sent now. */
  get ready(): boolean {
    return this.client.status === 'ready';
  }

  /** Full key name: the configured prefix plus `key`. */
  key(key: string): string {
    return this.prefix + key;
  }

  status(): StoreStatus {
    return {
      mode: this.mode,
      state: this.client.status,
      ready: this.ready,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      since: this.since,
    };
  }

  /** Resolves once the connection is ready, or rejects after `timeoutMs` (startup: say clearly Redis is missing). */
  async waitReady(timeoutMs: number): Promise<void> {
    if (this.ready) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        reject(new Error(`redis not ready after ${timeoutMs} ms${this.lastError ? `: ${this.lastError}` : ''}`));
      }, timeoutMs);
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once('ready', onReady);
    });
  }

  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
