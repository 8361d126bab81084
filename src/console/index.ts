/**
 * Builds the console from the running gateway's own parts (wired by main.ts on the admin listener only).
 */
import { auditDir } from '../audit/service.ts';
import type { Gateway } from '../gateway/gateway.ts';
import type { Services } from '../gateway/services.ts';
import { TeamResolver } from '../guards/limits/keys.ts';
import type { AdminExtension } from '../server/admin.ts';
import { LiveFeed } from './live.ts';
import { consoleExtension } from './service.ts';

export interface ConsoleHandle {
  readonly extension: AdminExtension;
  readonly live: LiveFeed;
  close(): void;
}

export function createConsole(gateway: Gateway, services: Services): ConsoleHandle {
  const first = gateway.state().snapshot;
  const live = new LiveFeed(first.gateway.admin.console.liveRecords);
  const unsubscribe = services.audit?.writer.addSink(live);
  const dir = services.audit === undefined ? undefined : auditDir(first);
  let teams = { spec: first.gateway.limits.teams, resolver: new TeamResolver(first.gateway.limits.teams) };
  const admin = () => gateway.state().snapshot.gateway.admin;
  const extension = consoleExtension({
    authority: () => services.identity.authority,
    spec: admin,
    traceUrl: () => admin().console.traceUrl,
    sources: {
      auditDir: dir,
      live,
      readiness: () => gateway.readiness(),
      snapshot: () => gateway.state().snapshot,
      reloads: () => gateway.reloadHistory(),
      policy: () => services.policy.status(),
      policyHistory: () => services.policy.history(),
      limits: (filter) => services.limits.report(filter),
      metrics: services.metrics,
      teamOf: (principal) => {
        const spec = gateway.state().snapshot.gateway.limits.teams;
        if (spec !== teams.spec) teams = { spec, resolver: new TeamResolver(spec) };
        let path = '';
        const spiffe = principal.startsWith('spiffe://');
        if (spiffe) {
          const slash = principal.indexOf('/', 'spiffe://'.length);
          path = slash < 0 ? '' : principal.slice(slash);
        }
        return teams.resolver.teamOfPrincipal({ claims: {}, issuer: spiffe ? 'spiffe' : 'oidc', path });
      },
    },
  });
  return { extension, live, close: () => unsubscribe?.() };
}
