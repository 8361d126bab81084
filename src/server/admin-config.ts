/**
 * The admin listener's config (`spec.admin` of the Gateway): where it listens, who its administrators are, and the
 * operator console it serves. The listener always exists (loopback:9090 by default; `listener`, or the
 * TOLLGATE_ADMIN_PORT / TOLLGATE_ADMIN_HOST variables the Helm chart sets); the console only when enabled, and only
 * there (never on the public listener).
 */
import { z } from 'zod';

export const adminSpec = z
  .strictObject({
    listener: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        /**
         * The admin listener's port (TOLLGATE_ADMIN_PORT overrides it): /readyz, /metrics, /limits and the console
         * are served there and nowhere else. Default 9090, or an ephemeral port when the public listener is on an
         * ephemeral one (tests, benches: many gateways on one machine). 0: an ephemeral port.
         */
        port: z.number().int().min(0).max(65535).optional(),
      })
      .prefault({}),
    /** Administrators: principal ids (SPIFFE IDs or issuer principals), exact or a prefix ending in `*`. */
    principals: z.array(z.string().min(1)).default([]),
    /** Administrators by OIDC group: any of these in the token's `groupsClaim` claim. */
    groups: z.array(z.string().min(1)).default([]),
    groupsClaim: z.string().min(1).default('groups'),
    console: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** Link from a chain to the trace in Jaeger/Tempo: an http(s) URL with `{traceId}`. */
        traceUrl: z
          .string()
          .refine((u) => /^https?:\/\/[^\s]+$/.test(u) && u.includes('{traceId}'), 'traceUrl must be an http(s) URL containing {traceId}')
          .optional(),
        /** Recent audit records kept in memory for the live view. */
        liveRecords: z.number().int().min(10).max(10_000).default(500),
      })
      .prefault({}),
  })
  .refine((a) => !a.console.enabled || a.principals.length + a.groups.length > 0, {
    message: 'admin.console.enabled needs administrators (admin.principals or admin.groups): the console is never anonymous',
    path: ['console', 'enabled'],
  });
export type AdminSpec = z.infer<typeof adminSpec>;

export const DEFAULT_ADMIN_PORT = 9090;

/**
 * Where the admin listener listens, from config and the environment (`publicPort`: the public listener's configured
 * port; an ephemeral public port makes the default admin port ephemeral too); undefined for an invalid port.
 */
export function adminListener(spec: AdminSpec, publicPort: number, env: NodeJS.ProcessEnv = process.env): { host: string; port: number } | undefined {
  const envPort = env.TOLLGATE_ADMIN_PORT === undefined || env.TOLLGATE_ADMIN_PORT === '' ? undefined : Number(env.TOLLGATE_ADMIN_PORT);
  const port = envPort ?? spec.listener.port ?? (publicPort === 0 ? 0 : DEFAULT_ADMIN_PORT);
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  return { host: env.TOLLGATE_ADMIN_HOST || spec.listener.host, port };
}
