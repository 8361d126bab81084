/**
 * Triton's active health check: `/v2/health/ready` answers 200 before any model has loaded (even when all fail), so
 * an endpoint is healthy when every model the routes send to its backend by exact name answers its
 * `/v2/models/<m>/ready` with 200 (server readiness only when no model is known by name: pattern-only routes).
 */
import type { Dispatcher } from 'undici';
import type { ConfigSnapshot } from '../../config/load.ts';
import type { HealthProbe } from '../../upstream/health.ts';

/** The exact model names (at the backend) each backend of `protocol` is routed, from every route of the snapshot. */
export function modelsByBackend(snapshot: ConfigSnapshot, protocol: string): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const [, spec] of snapshot.routeSpecs) {
    for (const m of spec.models ?? []) {
      if (m.name === undefined || snapshot.backends.get(m.backend)?.spec.protocol !== protocol) continue;
      let set = out.get(m.backend);
      if (set === undefined) out.set(m.backend, (set = new Set()));
      set.add(m.model ?? m.name);
    }
  }
  return new Map([...out].map(([b, s]) => [b, [...s]]));
}

async function get(endpoint: { basePath: string; dispatcher: Dispatcher }, path: string, headers: Readonly<Record<string, string>>, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const res = await endpoint.dispatcher.request({ method: 'GET', path: endpoint.basePath + path, headers, signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs } as Dispatcher.RequestOptions);
  await res.body.dump().catch(() => {});
  if (res.statusCode < 200 || res.statusCode > 299) throw new Error(`health check ${path} answered ${res.statusCode}`);
}

/** The probe of one backend: its models' readiness (read at each round: routes change with reloads). */
export function readyProbe(headers: Readonly<Record<string, string>>, timeoutMs: number, models: () => readonly string[]): HealthProbe {
  return async (endpoint, signal) => {
    const names = models();
    if (names.length === 0) return get(endpoint, '/v2/health/ready', headers, timeoutMs, signal);
    await Promise.all(names.map((m) => get(endpoint, `/v2/models/${encodeURIComponent(m)}/ready`, headers, timeoutMs, signal)));
  };
}
