/**
 * The long-lived services behind the guards (identity, policy, limits, audit, telemetry), created once at start and
 * reconfigured from each new snapshot. Pipeline order is the order of `guards` here:
 * authenticate -> authorize -> limit -> (forward) -> account -> audit.
 */
import type { Registry } from 'prom-client';
import { createAuditService, type AuditService } from '../audit/service.ts';
import type { ConfigSnapshot } from '../config/load.ts';
import { IdentityService } from '../guards/identity/service.ts';
import { LimitsService } from '../guards/limits/service.ts';
import { PolicyService } from '../guards/policy/service.ts';
import type { AdminExtension } from '../server/admin.ts';
import type { Logger } from '../telemetry/logger.ts';
import { createTelemetry, type CallTelemetry } from '../telemetry/service.ts';
import type { UpstreamCredentials } from '../upstream/credentials.ts';
import { RedisStore } from '../store/redis.ts';
import type { GuardServices } from './guards.ts';

export interface Services {
  readonly guards: readonly GuardServices[];
  /** Endpoints of the admin listener (/readyz/store, /metrics, /limits...). */
  readonly admin: readonly AdminExtension[];
  /** Endpoints of the public listener besides routes (RFC 9728 metadata). */
  readonly publicExtensions: readonly AdminExtension[];
  /** Spans and metrics per call, handed to the Gateway. */
  readonly telemetry: CallTelemetry;
  /** Tollgate's own credentials for upstream calls (JWT-SVIDs from the Workload API). */
  readonly credentials: UpstreamCredentials | undefined;
  /** The identity service (tests and benchmarks look inside). */
  readonly identity: IdentityService;
  /** The policy service: its decisionLog publishes every decision (audit, telemetry). */
  readonly policy: PolicyService;
  /** The shared Redis store when the Gateway configures `redis` (limits, session revocation, A2A task ownership). */
  readonly store: RedisStore | undefined;
  /** Rate limits and budgets (counters in `store`, or in memory without one). */
  readonly limits: LimitsService;
  /** The metrics registry (undefined when metrics are off): the console reads it. */
  readonly metrics: Registry | undefined;
  /** The audit log (undefined when the config disables it). */
  readonly audit: AuditService | undefined;
  /** Flushes and seals the audit log now (a second SIGTERM: no drain, but never an unsealed log). */
  sealAudit(): Promise<void>;
  /** Flushes and closes everything (audit buffers, exporters, connections) at shutdown. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  /** Guard services added after policy and before audit (tests add their own guards this way). */
  readonly guards?: readonly GuardServices[] | undefined;
}

export async function createServices(snapshot: ConfigSnapshot, log: Logger, opts: ServiceOptions = {}): Promise<Services> {
  const guards: GuardServices[] = [];
  const admin: AdminExtension[] = [];
  const publicExtensions: AdminExtension[] = [];
  const closers: Array<() => Promise<void>> = [];
  const telemetry = await createTelemetry(snapshot, log);
  // One Redis connection for every cross-replica feature; connects in the background (features apply their own fail
  // mode while it is not ready). A change of the redis section needs a restart.
  const store = snapshot.gateway.redis ? new RedisStore(snapshot.gateway.redis, snapshot.dir, log) : undefined;
  if (store) {
    admin.push((app) => app.get('/readyz/store', (c) => c.json(store.status(), store.ready ? 200 : 503)));
  }
  admin.push(...telemetry.admin);
  if (store) telemetry.telemetry.watchStore(store);
  closers.push(telemetry.close);
  // authenticate: first in the pipeline.
  const identity = await IdentityService.create(snapshot, log);
  guards.push(identity);
  // RFC 9728 metadata is for callers: served on the public listener (everything else in `admin` is operational).
  publicExtensions.push(identity.admin);
  telemetry.telemetry.watchTokenChecks(identity.checks);
  closers.push(() => identity.close());
  // Authorize: Rego compiled to WASM (after identity, which sets call.principal). Decisions are also published on
  // policy.decisionLog (subscribe(listener)) for the audit and telemetry guards.
  const policy = new PolicyService(log);
  await policy.configure(snapshot);
  telemetry.telemetry.watchPolicy(() => policy.status().sources);
  guards.push(policy);
  closers.push(() => policy.close());
  // Limit: after authorize (keys and rate_class / cost_multiplier come from the principal and the policy's
  // obligations); its settle reconciles budget reservations before the audit guard records the call.
  const limits = new LimitsService({ log, store, registry: telemetry.telemetry.metrics?.registry });
  guards.push(limits);
  admin.push(limits.admin);
  closers.push(() => limits.close());
  guards.push(...(opts.guards ?? []));
  // Audit stays last: it records the final state of every call, and closes (flushes) before telemetry does.
  const audit = await createAuditService(snapshot, log, { decisionLog: policy.decisionLog });
  if (audit) {
    guards.push(audit);
    closers.push(audit.close);
    telemetry.telemetry.watchAudit(audit.writer);
  }
  return {
    guards,
    admin,
    publicExtensions,
    telemetry: telemetry.telemetry,
    credentials: identity.credentials,
    identity,
    policy,
    store,
    limits,
    audit,
    metrics: telemetry.telemetry.metrics?.registry,
    sealAudit: async () => {
      await audit?.close();
    },
    close: async () => {
      for (const close of closers.reverse()) await close();
      await store?.close();
    },
  };
}
