/**
 * The long-lived services behind the guards (identity, policy, limits, audit, telemetry), created once at start and
 * reconfigured from each new snapshot. Pipeline order is the order of `guards` here:
 * authenticate -> authorize -> limit -> (forward) -> account -> audit.
 */
import type { ConfigSnapshot } from '../config/load.ts';
import { PolicyService } from '../guards/policy/service.ts';
import type { AdminExtension } from '../server/admin.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { GuardServices } from './guards.ts';

export interface Services {
  readonly guards: readonly GuardServices[];
  readonly admin: readonly AdminExtension[];
  /** Flushes and closes everything (audit buffers, exporters, connections) at shutdown. */
  close(): Promise<void>;
}

export async function createServices(snapshot: ConfigSnapshot, log: Logger): Promise<Services> {
  const guards: GuardServices[] = [];
  const admin: AdminExtension[] = [];
  const closers: Array<() => Promise<void>> = [];

  // Authorize: Rego compiled to WASM (after identity, which sets call.principal). Decisions are also published on
  // policy.decisionLog (subscribe(listener)) for the audit and telemetry guards.
  const policy = new PolicyService(log);
  await policy.configure(snapshot);
  guards.push(policy);
  closers.push(() => policy.close());
  return {
    guards,
    admin,
    close: async () => {
      for (const close of closers.reverse()) await close();
    },
  };
}
