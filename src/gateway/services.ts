/**
 * The long-lived services behind the guards (identity, policy, limits, audit, telemetry), created once at start and
 * reconfigured from each new snapshot. Pipeline order is the order of `guards` here:
 * authenticate -> authorize -> limit -> (forward) -> account -> audit.
 */
import type { ConfigSnapshot } from '../config/load.ts';
import type { AdminExtension } from '../server/admin.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { GuardServices } from './guards.ts';

export interface Services {
  readonly guards: readonly GuardServices[];
  readonly admin: readonly AdminExtension[];
  /** Flushes and closes everything (audit buffers, exporters, connections) at shutdown. */
  close(): Promise<void>;
}

export async function createServices(_snapshot: ConfigSnapshot, _log: Logger): Promise<Services> {
  const guards: GuardServices[] = [];
  const admin: AdminExtension[] = [];
  const closers: Array<() => Promise<void>> = [];
  return {
    guards,
    admin,
    close: async () => {
      for (const close of closers.reverse()) await close();
    },
  };
}
