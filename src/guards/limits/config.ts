/**
 * Config of the limits guard: the Gateway's `limits` section (time zone, replicas, partitioning, teams, prices,
 * reservations, default fail modes) and two kinds of objects, `RateLimit` and `Budget`. Referenced from
 * src/config/schema.ts; cross-object checks (routes and backends that exist, prices for the models a cost budget
 * names, keys that fit the partitioning) are in checkLimits, run by the loader so every problem has its line.
 */
import { z } from 'zod';

/** What a limit may be keyed by: each is bounded (config, verified identities, policy), none is free-form input. */
export const DIMENSIONS = ['principal', 'team', 'route', 'upstream', 'tool', 'model', 'rate_class', 'skill'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/** Key dimensions are checked with the object's other rules (so one load reports every problem of a limit). */
const dimension = z.string();

/** Exact name, or a prefix ending in `*` (the same patterns as the policy's grants). */
const pattern = z.string().regex(/^[^*]*\*?$/, 'must be a name, or a prefix ending in "*"').min(1);

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const duration = z
  .string()
  .regex(DURATION, 'must be a duration such as 500ms, 1s, 1m, 1h or 1d')
  .transform((v) => {
    const m = DURATION.exec(v)!;
    return Number(m[1]) * UNIT_MS[m[2]!]!;
  })
  .refine((ms) => ms >= 1 && ms <= 366 * 86_400_000, 'must be between 1ms and 366d');

export function validTimeZone(tz: string): boolean {
  if (tz === 'UTC') return true; // the default: no Intl formatter (ICU's zone data) built to check it at start
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const nonNegativePrice = z.number().refine((n) => Number.isFinite(n) && n >= 0, 'a price cannot be negative');

export const limitsSpec = z
  .strictObject({
    /** Budget windows (minute, hour, day, month) start at calendar boundaries in this IANA time zone. */
    timeZone: z.string().default('UTC').refine(validTimeZone, 'unknown time zone (an IANA name such as Europe/Paris)'),
    /** Gateway replicas sharing the store: a rate limit's local fallback bucket gets 1/replicas of its rate. */
    replicas: z.number().int().min(1).max(10_000).default(1),
    /**
     * Redis Cluster: every key of one decision shares a hash tag, so the whole decision is one script on one shard.
     * `global`: one tag for every limiter key (any set of limits; one shard serves them all). `principal` / `team`:
     * one tag per principal / team (spread over shards), which requires every limit to be keyed by it.
     */
    partition: z.enum(['global', 'principal', 'team']).default('global'),
    /** What a limit does when the store cannot answer, unless it says otherwise. */
    failMode: z
      .strictObject({
        rate: z.enum(['closed', 'open', 'local']).default('local'),
        budget: z.enum(['closed', 'open']).default('closed'),
      })
      .prefault({}),
    /** Where a principal's team comes from: a claim of its token, else a pattern over its SPIFFE ID path. */
    teams: z
      .strictObject({
        claim: z.string().min(1).optional(),
        /** e.g. `/teams/{team}/*`: `{team}` is one path segment; a trailing `/*` matches any deeper path. */
        spiffePath: z
          .string()
          .regex(/^\/.*\{team\}.*$/, 'must be an absolute path pattern containing {team}')
          .refine((p) => p.split('{team}').length <= 2, 'must contain {team} only once')
          .optional(),
      })
      .prefault({}),
    reservation: z
      .strictObject({
        /** Output tokens reserved for a request that sets no max_tokens (the adapter caps the request to it). */
        defaultOutputTokens: z.number().int().min(1).default(1024),
        /** Input tokens reserved when the adapter gave no estimate. */
        defaultInputTokens: z.number().int().min(0).default(1024),
        /** A reservation above this is refused up front, whatever budget is left (a huge max_tokens). */
        maxTokens: z.number().int().min(1).default(262_144),
      })
      .prefault({}),
    /** Price per million tokens, input and output apart; `model: "*"` prices every model not listed. */
    prices: z.array(z.strictObject({ model: pattern, input: nonNegativePrice, output: nonNegativePrice })).default([]),
    /** Cost of one MCP tool call, by `<server>/<tool>` (a prefix ending in `*` allowed). */
    toolCosts: z.array(z.strictObject({ tool: pattern, cost: nonNegativePrice })).default([]),
    currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as USD').default('USD'),
    /**
     * Local leases of request-rate units (lease.ts): one round trip takes up to k units of a rate limit, the next
     * calls on the same key spend them in this replica for at most `lifetime`; units left then count as spent.
     * k = min(units, floor(burst x share), 1 + floor(share x rate x lifetime / replicas)); the last term (not applied
     * to a RateLimit's explicit `leaseUnits`) keeps units that expire unspent within `share` of the limit's rate. A
     * limit whose k is below 2 is decided in the store on every call.
     */
    lease: z
      .strictObject({
        /** At most this many units per round trip (0 or 1: no leases). A RateLimit's `leaseUnits` overrides it. */
        units: z.number().int().min(0).max(1_000).default(8),
        /** ...and at most this share of the limit's burst, so a lease stays a small part of the bucket. */
        share: z.number().refine((n) => Number.isFinite(n) && n > 0 && n <= 0.5, 'must be above 0 and at most 0.5').default(0.05),
        /**
         * How long leased units may be spent locally; unused ones then count as spent (never given back). 250 ms: long
         * enough for a key called every few tens of ms (c=1 streamed completions) to stay leased; what expires unused is
         * bounded by k - 1 per lease whatever the lifetime, and a key's lease size halves each time.
         */
        lifetime: duration.refine((ms) => ms <= 1_000, 'must be at most 1s (leased units count as spent until they expire)').default(250),
        /**
         * Refill ahead of time: when a lease (rate or budget) falls to this share of the units it held, one request for
         * more goes to the store in the background and the calls go on being served from what is left (0: a lease is
         * asked for only by a call that finds it spent, on that call's path). Held units never exceed one lease's.
         */
        refillAt: z.number().refine((n) => Number.isFinite(n) && n >= 0 && n < 1, 'must be at least 0 and below 1').default(0.5),
        /**
         * Leases of budget units (lease.ts): one round trip reserves up to `reservations` times the call's reservation
         * of a busy budget key, and at most `share` of what remains in the window (none near exhaustion); the next
         * calls reserve from it in this replica, and what is unused goes back to the store after `lifetime` or at drain.
         */
        budgets: z
          .strictObject({
            /** At most this many reservations per round trip (0 or 1: budgets are decided in the store on every call). */
            reservations: z.number().int().min(0).max(1_000).default(8),
            share: z.number().refine((n) => Number.isFinite(n) && n > 0 && n <= 0.5, 'must be above 0 and at most 0.5').default(0.05),
            /** How long leased units serve calls here before the unused ones are given back. */
            lifetime: duration.refine((ms) => ms >= 1 && ms <= 60_000, 'must be between 1ms and 1m').default(1_000),
          })
          .prefault({}),
      })
      .prefault({}),
  })
  .superRefine((l, ctx) => {
    const seen = new Map<string, number>();
    l.prices.forEach((p, i) => {
      if (seen.has(p.model)) ctx.addIssue({ code: 'custom', path: ['prices', i, 'model'], message: `model "${p.model}" is priced twice (also entry ${seen.get(p.model)})` });
      seen.set(p.model, i);
    });
    const tools = new Map<string, number>();
    l.toolCosts.forEach((t, i) => {
      if (tools.has(t.tool)) ctx.addIssue({ code: 'custom', path: ['toolCosts', i, 'tool'], message: `tool "${t.tool}" has two costs (also entry ${tools.get(t.tool)})` });
      else if (!t.tool.includes('/') && t.tool !== '*') ctx.addIssue({ code: 'custom', path: ['toolCosts', i, 'tool'], message: 'must be <server>/<tool> (or a prefix ending in "*")' });
      tools.set(t.tool, i);
    });
  });
export type LimitsSpec = z.infer<typeof limitsSpec>;

/** Which calls a limit applies to; every listed field must match (absent fields match everything). */
const matchSpec = z.strictObject({
  routes: z.array(z.string().min(1)).optional(),
  protocols: z.array(z.enum(['mcp', 'a2a', 'openai', 'kserve'])).optional(),
  operations: z.array(pattern).optional(),
  upstreams: z.array(z.string().min(1)).optional(),
  /** MCP tools as `<server>/<tool>`. */
  tools: z.array(pattern).optional(),
  /** A2A skills as `<agent>/<skill id>` (`<agent>/*`: messages that name no skill). */
  skills: z.array(pattern).optional(),
  models: z.array(pattern).optional(),
  principals: z.array(pattern).optional(),
  teams: z.array(z.string().min(1)).optional(),
  /** The `rate_class` obligation the policy returned for the call. */
  rateClasses: z.array(z.string().min(1)).optional(),
});
export type MatchSpec = z.infer<typeof matchSpec>;

function checkDims(dims: readonly string[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  dims.forEach((d, i) => {
    if (!(DIMENSIONS as readonly string[]).includes(d)) {
      ctx.addIssue({
        code: 'custom',
        path: ['key', i],
        message:
          `"${d}" is not a key dimension (one of ${DIMENSIONS.join(', ')}): keying on a free-form value such as a tool ` +
          'argument or a header would let callers create counters without bound',
      });
    } else if (seen.has(d)) ctx.addIssue({ code: 'custom', path: ['key', i], message: `"${d}" is listed twice` });
    seen.add(d);
  });
}

/** After validation, the key is a list of dimensions. */
function typedKey<T extends { key: string[] }>(v: T): Omit<T, 'key'> & { key: Dimension[] } {
  return v as Omit<T, 'key'> & { key: Dimension[] };
}

/** GCRA needs a whole number of microseconds per request; below 1 us (over 1,000,000/s) it cannot be represented. */
export const MAX_RATE_PER_SECOND = 1_000_000;

export const rateLimitSpec = z
  .strictObject({
    match: matchSpec.prefault({}),
    /** One bucket per distinct value of these (empty: one bucket for every matching call). */
    key: z.array(dimension).default([]),
    /** `requests` per `per` on average... */
    requests: z.number().int().min(0),
    per: duration.default(1_000),
    /** ...with at most `burst` at once (the bucket's size; default `requests`). */
    burst: z.number().int().min(0).optional(),
    failMode: z.enum(['closed', 'open', 'local']).optional(),
    /** Overrides the Gateway's `limits.lease.units` for this limit (0: never leased, every call decided in the store). */
    leaseUnits: z.number().int().min(0).max(1_000).optional(),
  })
  .superRefine((r, ctx) => {
    checkDims(r.key, ctx);
    if (r.requests === 0 && (r.burst ?? 0) === 0) {
      ctx.addIssue({ code: 'custom', path: ['requests'], message: 'a rate of 0 with a burst of 0 admits nothing: deny such calls with policy instead' });
    } else if (r.requests === 0) {
      ctx.addIssue({ code: 'custom', path: ['requests'], message: 'a rate of 0 never refills: use a Budget for a fixed allowance' });
    } else if (r.burst === 0) {
      ctx.addIssue({ code: 'custom', path: ['burst'], message: 'a burst of 0 admits nothing: the burst must be at least 1' });
    }
    if (r.requests > 0 && (r.per * 1000) / r.requests < 1) {
      ctx.addIssue({ code: 'custom', path: ['requests'], message: `at most ${MAX_RATE_PER_SECOND} per second per limit` });
    }
    if ((r.burst ?? r.requests) > 1_000_000_000) ctx.addIssue({ code: 'custom', path: ['burst'], message: 'must be at most 1000000000' });
  })
  .transform(typedKey);
export type RateLimitSpec = z.infer<typeof rateLimitSpec>;

export const budgetSpec = z
  .strictObject({
    match: matchSpec.prefault({}),
    /** One budget per distinct value of these (per agent: [principal]; per team: [team]). */
    key: z.array(dimension).default([]),
    /** Calendar window in the Gateway's `limits.timeZone`. */
    window: z.enum(['minute', 'hour', 'day', 'month']),
    /** Tokens (input + output, times the cost multiplier) per window. */
    tokens: z.number().int().min(1).max(1e15).optional(),
    /** Cost (in `limits.currency`, from the price table and tool costs, times the cost multiplier) per window. */
    cost: z.number().refine((n) => Number.isFinite(n) && n > 0 && n <= 1e6, 'must be a positive amount, at most 1000000').optional(),
    failMode: z.enum(['closed', 'open']).optional(),
  })
  .superRefine((b, ctx) => {
    checkDims(b.key, ctx);
    if (b.tokens === undefined && b.cost === undefined) ctx.addIssue({ code: 'custom', message: 'set tokens, cost or both' });
  })
  .transform(typedKey);
export type BudgetSpec = z.infer<typeof budgetSpec>;

/** A problem found across objects, with the path (inside the object's document) it points at. */
export interface LimitsProblem {
  readonly object: { readonly kind: 'RateLimit' | 'Budget' | 'Gateway'; readonly name: string };
  readonly path: readonly (string | number)[];
  readonly message: string;
}

export interface NamedLimit<S> {
  readonly name: string;
  readonly spec: S;
}

/** Whether `name` matches an exact-or-prefix pattern. */
export function matchesPattern(pattern: string, name: string): boolean {
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

/** The entry whose pattern matches `name`: an exact one first, then the longest matching prefix (`*` last). */
export function bestMatch<T>(items: readonly T[], patternOf: (item: T) => string, name: string): T | undefined {
  let best: T | undefined;
  let bestLength = -1;
  for (const item of items) {
    const p = patternOf(item);
    if (p === name) return item;
    if (matchesPattern(p, name) && p.length > bestLength) {
      best = item;
      bestLength = p.length;
    }
  }
  return best;
}

/** The price entry for a model. */
export function priceOf(prices: LimitsSpec['prices'], model: string): LimitsSpec['prices'][number] | undefined {
  return bestMatch(prices, (p) => p.model, model);
}

/** Checks that need the whole config: names that exist, prices for priced budgets, keys that fit the partition. */
export function checkLimits(
  spec: LimitsSpec,
  rates: readonly NamedLimit<RateLimitSpec>[],
  budgets: readonly NamedLimit<BudgetSpec>[],
  known: { readonly routes: ReadonlySet<string>; readonly backends: ReadonlySet<string> },
): LimitsProblem[] {
  const out: LimitsProblem[] = [];
  const common = (kind: 'RateLimit' | 'Budget', name: string, match: MatchSpec, key: readonly Dimension[]): void => {
    match.routes?.forEach((r, i) => {
      if (!known.routes.has(r)) out.push({ object: { kind, name }, path: ['spec', 'match', 'routes', i], message: `unknown Route "${r}"` });
    });
    match.upstreams?.forEach((u, i) => {
      if (!known.backends.has(u)) out.push({ object: { kind, name }, path: ['spec', 'match', 'upstreams', i], message: `unknown Backend "${u}"` });
    });
    if (spec.partition !== 'global' && !key.includes(spec.partition)) {
      out.push({
        object: { kind, name },
        path: ['spec', 'key'],
        message: `limits.partition is "${spec.partition}", so every limit must be keyed by ${spec.partition} (its counters live in that ${spec.partition}'s hash slot)`,
      });
    }
  };
  for (const r of rates) common('RateLimit', r.name, r.spec.match, r.spec.key);
  for (const b of budgets) {
    common('Budget', b.name, b.spec.match, b.spec.key);
    if (b.spec.cost === undefined) continue;
    b.spec.match.models?.forEach((m, i) => {
      if (priceOf(spec.prices, m) === undefined) {
        out.push({ object: { kind: 'Budget', name: b.name }, path: ['spec', 'match', 'models', i], message: `model "${m}" has no price in the Gateway's limits.prices: its cost cannot be counted` });
      }
    });
  }
  return out;
}
