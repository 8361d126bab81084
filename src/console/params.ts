/**
 * The console's query parameters, validated in one place: a known name, given once, within its bounds. Empty values
 * (a form's blank field) mean "not set". Anything else is refused with the reason (400), never passed on.
 */
import { z } from 'zod';

export const RANGES = { '1h': 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 } as const;

const printable = /^[\x21-\x7e]+$/;

const schema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  principal: z.string().max(512).regex(printable, 'principal: printable characters without spaces').optional(),
  protocol: z.string().regex(/^[a-z0-9-]{1,32}$/, 'protocol: lowercase letters, digits and dashes').optional(),
  decision: z.enum(['allow', 'deny']).optional(),
  trace: z.string().regex(/^[0-9a-f]{32}$/, 'trace: 32 lowercase hex digits').optional(),
  range: z.enum(['1h', '24h', '7d', '30d']).default('24h'),
  by: z.enum(['team', 'agent']).default('team'),
  buckets: z.coerce.number().int().min(1).max(500).default(48),
});
export type Params = z.infer<typeof schema>;

/** Parses `c.req.queries()`; a string is the reason for refusing. */
export function parseParams(queries: Record<string, string[]>): Params | string {
  const flat: Record<string, string> = {};
  for (const [k, values] of Object.entries(queries)) {
    if (values.length > 1) return `${k.slice(0, 32)}: given more than once`;
    if (values[0] !== undefined && values[0] !== '') flat[k] = values[0];
  }
  const r = schema.safeParse(flat);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  return issue.code === 'unrecognized_keys' ? `unknown parameter(s): ${issue.keys.map((k) => k.slice(0, 32)).join(', ')}` : `${issue.path.join('.')}: ${issue.message}`;
}
