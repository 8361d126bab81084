/**
 * The Gateway's `redis` section: the shared store behind state that must hold across replicas (rate limits and
 * budgets, revoked MCP sessions, A2A task ownership). Absent: every such feature keeps its state in memory
 * (one replica). Exactly one of `url`, `sentinel` or `cluster`.
 */
import { z } from 'zod';
import { secretRef } from '../config/secret.ts';

const hostPort = z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535).default(6379) });

export const redisSpec = z
  .strictObject({
    /** `redis://[user@]host:port/db` or `rediss://...` (TLS). A password never sits in it: use `password`. */
    url: z
      .url()
      .refine((u) => /^rediss?:\/\//.test(u), 'must be a redis:// or rediss:// URL')
      .refine((u) => !/^rediss?:\/\/[^/@]*:[^/@]*@/.test(u), 'a password in the URL is inline: use password.valueFrom')
      .optional(),
    /** Redis Sentinel: the master group name and the sentinels to ask. */
    sentinel: z.strictObject({ name: z.string().min(1), nodes: z.array(hostPort).min(1), password: secretRef.optional() }).optional(),
    /** Redis Cluster: seed nodes. Keys of one decision share a hash tag, so scripts run on one shard. */
    cluster: z.strictObject({ nodes: z.array(hostPort).min(1) }).optional(),
    username: z.string().optional(),
    password: secretRef.optional(),
    tls: z.boolean().default(false),
    /** Prefix of every key Tollgate writes (several gateways may share one Redis). */
    keyPrefix: z.string().regex(/^[A-Za-z0-9_:.-]{0,32}$/).default('tg:'),
    /** A command not answered within this is failed (the feature's fail mode applies); no offline queue. */
    commandTimeoutMs: z.number().int().min(1).max(60_000).default(100),
    connectTimeoutMs: z.number().int().min(1).max(60_000).default(2_000),
    /** Reconnect backoff: exponential from min to max, with full jitter (no reconnect storm). */
    reconnect: z
      .strictObject({ minMs: z.number().int().min(1).default(50), maxMs: z.number().int().min(1).default(5_000) })
      .prefault({}),
  })
  .superRefine((r, ctx) => {
    const modes = [r.url, r.sentinel, r.cluster].filter((m) => m !== undefined).length;
    if (modes !== 1) ctx.addIssue({ code: 'custom', message: 'set exactly one of url, sentinel or cluster' });
    if (r.reconnect.maxMs < r.reconnect.minMs) ctx.addIssue({ code: 'custom', path: ['reconnect', 'maxMs'], message: 'must be >= minMs' });
  });
export type RedisSpec = z.infer<typeof redisSpec>;
