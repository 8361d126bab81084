/**
 * The long-lived services behind the guards (identity, policy, limits, audit, telemetry), created once at start and
 * reconfigured from each new snapshot. Pipeline order is the order of `guards` here:
 * authenticate -> authorize -> limit -> (forward) -> account -> audit.
 */
import type { ConfigSnapshot } from '../config/load.ts';
import { IdentityService } from '../guards/identity/service.ts';
import { PolicyService } from '../guards/policy/service.ts';
import type { AdminExtension } from '../server/admin.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { UpstreamCredentials } from '../upstream/credentials.ts';
import type { GuardServices } from './guards.ts';

export interface Services {
  readonly guards: readonly GuardServices[];
  readonly admin: readonly AdminExtension[];
  /** Tollgate's own credentials for upstream calls (JWT-SVIDs from the Workload API). */
  readonly credentials: UpstreamCredentials | undefined;
  /** The identity service (tests and benchmarks look inside). */
  readonly identity: IdentityService;
  /** The policy service: its decisionLog publishes every decision (audit, telemetry). */
  readonly policy: PolicyService;
  /** Flushes and closes everything (audit buffers, exporters, connections) at shutdown. */
  close(): Promise<void>;
}

export async function createServices(snapshot: ConfigSnapshot, log: Logger): Promise<Services> {
  const guards: GuardServices[] = [];
  const admin: AdminExtension[] = [];
  const closers: Array<() => Promise<void>> = [];
  // authenticate: first in the pipeline.
  const identity = await IdentityService.create(snapshot, log);
  guards.push(identity);
  admin.push(identity.admin);
  closers.push(() => identity.close());

  // Authorize: Rego compiled to WASM (after identity, which sets call.principal). Decisions are also published on
  // policy.decisionLog (subscribe(listener)) for the audit and telemetry guards.
  const policy = new PolicyService(log);
  await policy.configure(snapshot);
  guards.push(policy);
  closers.push(() => policy.close());
  return {
    guards,
    admin,
    credentials: identity.credentials,
    identity,
    policy,
    close: async () => {
      for (const close of closers.reverse()) await close();
    },
  };
}
