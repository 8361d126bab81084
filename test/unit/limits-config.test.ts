/**
 * The limits' pure parts: config refused at load with file and line, calendar windows in a time zone (DST
 * included), team mapping, key encoding, the bucket math, and the refusal headers adapters render.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/load.ts';
import { httpRateLimitHeaders, openAiDuration, openAiRateLimitHeaders, type LimitNotice } from '../../src/core/limits.ts';
import { MemoryCounters } from '../../src/guards/limits/decide.ts';
import { validTimeZone } from '../../src/guards/limits/config.ts';
import { compileRate } from '../../src/guards/limits/plan.ts';
import { encodeValue, TeamResolver } from '../../src/guards/limits/keys.ts';
import { Calendar } from '../../src/guards/limits/windows.ts';
import { limitCall, limitsSnapshot } from '../helpers/limits.ts';

const HEAD = 'apiVersion: tollgate.dev/v1alpha1\n';

function problems(docs: string, limitsYaml = '', extra = ''): string[] {
  try {
    limitsSnapshot(docs, limitsYaml, extra);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.file.split('/').pop()}:${i.line}: ${i.message}`);
    throw err;
  }
  return [];
}

describe('limits config', () => {
  it('refuses impossible and unbounded limits with the line of each problem', () => {
    const docs = `${HEAD}kind: RateLimit
metadata: { name: zero }
spec:
  requests: 0
  burst: 0
---
${HEAD}kind: RateLimit
metadata: { name: unbounded }
spec:
  key:
    - principal
    - args.city
  requests: 10
---
${HEAD}kind: RateLimit
metadata: { name: too-fast }
spec: { requests: 2000000, per: 1s }
---
${HEAD}kind: Budget
metadata: { name: empty }
spec: { key: [team], window: day }
---
${HEAD}kind: Budget
metadata: { name: unpriced }
spec:
  window: month
  cost: 10
  match:
    models: [llama, gpt-unknown]
    routes: [nowhere]
`;
    const limits = `    prices:
      - { model: llama, input: 0.1, output: 0.2 }
      - { model: qwen, input: -1, output: 0.2 }
`;
    expect(problems(docs, limits)).toEqual([
      'gateway.yaml:8: spec.limits.prices.1.input: a price cannot be negative',
      'limits.yaml:5: spec.requests: a rate of 0 with a burst of 0 admits nothing: deny such calls with policy instead',
      'limits.yaml:14: spec.key.1: "args.city" is not a key dimension (one of principal, team, route, upstream, tool, model, rate_class, skill): keying on a free-form value such as a tool argument or a header would let callers create counters without bound',
      'limits.yaml:20: spec.requests: at most 1000000 per second per limit',
      'limits.yaml:25: spec: set tokens, cost or both',
    ]);
    // Cross-object checks run once every object parses.
    expect(problems(docs.split('---\n').slice(4).join(''), '    prices: [{ model: llama, input: 0.1, output: 0.2 }]\n')).toEqual([
      'limits.yaml:9: unknown Route "nowhere"',
      'limits.yaml:8: model "gpt-unknown" has no price in the Gateway\'s limits.prices: its cost cannot be counted',
    ]);
  });

  it('refuses a key that does not fit the Cluster partition, duplicates, a bad time zone and team pattern', () => {
    const docs = `${HEAD}kind: Budget
metadata: { name: team-day }
spec: { key: [team], window: day, tokens: 1000 }
---
${HEAD}kind: Budget
metadata: { name: team-day }
spec: { key: [team, team], window: day, tokens: 1000 }
`;
    expect(problems(docs, '    partition: principal\n')).toEqual([
      'limits.yaml:9: spec.key.1: "team" is listed twice',
    ]);
    expect(problems(docs.split('---\n')[0]!, '    partition: principal\n')).toEqual([
      'limits.yaml:4: limits.partition is "principal", so every limit must be keyed by principal (its counters live in that principal\'s hash slot)',
    ]);
    expect(problems('', '    timeZone: Mars/Olympus\n    teams: { spiffePath: /teams/* }\n')).toEqual([
      'gateway.yaml:6: spec.limits.timeZone: unknown time zone (an IANA name such as Europe/Paris)',
      'gateway.yaml:7: spec.limits.teams.spiffePath: must be an absolute path pattern containing {team}',
    ]);
  });

  it('sizes rate leases (k = min(units, burst x share, 1 + share x rate x lifetime / replicas), off below 2) and refuses bad lease settings', () => {
    const docs = (burst: number, extra = ''): string => `${HEAD}kind: RateLimit\nmetadata: { name: r }\nspec: { requests: ${burst}, per: 1s${extra} }\n`;
    const leaseOf = (d: string, yaml = ''): unknown => compileRate(limitsSnapshot(d, yaml).limits.rates[0]!, limitsSnapshot(d, yaml).gateway.limits).lease;
    expect(leaseOf(docs(10))).toBeUndefined(); // 10 x 0.05 < 2: every call in the store
    // 40/s: one unit expiring unspent per 250 ms would be 10% of the rate (share 5%): not leased.
    expect(leaseOf(docs(40))).toBeUndefined();
    expect(leaseOf(docs(200))).toEqual({ units: 3, lifetimeMs: 250 }); // 1 + floor(0.05 x 200 x 0.25)
    expect(leaseOf(docs(1000))).toEqual({ units: 8, lifetimeMs: 250 });
    expect(leaseOf(docs(1000), '    replicas: 4\n')).toEqual({ units: 4, lifetimeMs: 250 }); // 1 + floor(12.5 / 4)
    expect(leaseOf(docs(40, ', leaseUnits: 2'))).toEqual({ units: 2, lifetimeMs: 250 }); // explicit: the operator's choice
    expect(leaseOf(docs(1000, ', leaseUnits: 0'))).toBeUndefined();
    expect(leaseOf(docs(1000, ', leaseUnits: 30'))).toEqual({ units: 30, lifetimeMs: 250 });
    expect(leaseOf(docs(1000, ', leaseUnits: 300'))).toEqual({ units: 50, lifetimeMs: 250 }); // still a share of the burst
    expect(leaseOf(docs(1000), '    lease: { units: 1 }\n')).toBeUndefined();
    expect(leaseOf(docs(1000), '    lease: { units: 4, share: 0.5, lifetime: 20ms }\n')).toEqual({ units: 4, lifetimeMs: 20 });
    expect(problems(docs(1000, ', leaseUnits: -1'), '    lease: { share: 0.6, lifetime: 2s, units: 2000, refillAt: 1 }\n')).toEqual([
      'gateway.yaml:6: spec.limits.lease.units: Too big: expected number to be <=1000',
      'gateway.yaml:6: spec.limits.lease.share: must be above 0 and at most 0.5',
      'gateway.yaml:6: spec.limits.lease.lifetime: must be at most 1s (leased units count as spent until they expire)',
      'gateway.yaml:6: spec.limits.lease.refillAt: must be at least 0 and below 1',
      'limits.yaml:4: spec.leaseUnits: Too small: expected number to be >=0',
    ]);
    // Refill ahead of time at half a lease by default; 0 turns it off (a lease is asked for by the call that finds it spent).
    expect(limitsSnapshot(docs(1000)).gateway.limits.lease.refillAt).toBe(0.5);
    expect(limitsSnapshot(docs(1000), '    lease: { refillAt: 0 }\n').gateway.limits.lease.refillAt).toBe(0);
  });
});

describe('calendar windows', () => {
  it('align days and months on local midnight, DST included', () => {
    const paris = new Calendar('Europe/Paris');
    // 2026-03-29: clocks go from 02:00 to 03:00, a 23-hour day.
    const dst = paris.current('day', Date.parse('2026-03-29T12:00:00Z'));
    expect(dst).toEqual({ id: '2026-03-29', startMs: Date.parse('2026-03-28T23:00:00Z'), endMs: Date.parse('2026-03-29T22:00:00Z') });
    const month = paris.current('month', Date.parse('2026-03-31T22:30:00Z')); // already April in Paris
    expect(month).toEqual({ id: '2026-04', startMs: Date.parse('2026-03-31T22:00:00Z'), endMs: Date.parse('2026-04-30T22:00:00Z') });
    const utc = new Calendar('UTC');
    expect(utc.current('minute', Date.parse('2026-12-03T10:15:42Z'))).toEqual({ id: '2026-12-03T10h15', startMs: Date.parse('2026-12-03T10:15:00Z'), endMs: Date.parse('2026-12-03T10:16:00Z') });
    expect(utc.current('hour', Date.parse('2026-12-31T23:59:59Z'))).toEqual({ id: '2026-12-31T23h', startMs: Date.parse('2026-12-31T23:00:00Z'), endMs: Date.parse('2027-01-01T00:00:00Z') });
    const kolkata = new Calendar('Asia/Kolkata'); // +05:30
    expect(kolkata.current('day', Date.parse('2026-06-01T20:00:00Z')).id).toBe('2026-06-02');
  });

  it('UTC (read from Date, no Intl formatter) gives the windows the Intl path gives for Etc/UTC', () => {
    const kinds = ['minute', 'hour', 'day', 'month'] as const;
    // Instants spread over years, leap days and month ends, each at a fresh calendar (no cached window).
    const instants = [Date.parse('2024-02-29T23:59:59.999Z'), Date.parse('2026-12-31T23:59:59Z'), Date.parse('2027-01-01T00:00:00Z'), 0];
    for (let i = 0; i < 200; i++) instants.push(Date.UTC(2020, 0, 1) + i * 7_919_993_311);
    for (const at of instants) {
      for (const kind of kinds) expect(new Calendar('UTC').current(kind, at), `${kind} at ${new Date(at).toISOString()}`).toEqual(new Calendar('Etc/UTC').current(kind, at));
    }
    expect(validTimeZone('UTC')).toBe(true);
    expect(validTimeZone('Etc/UTC')).toBe(true);
    expect(validTimeZone('Mars/Olympus')).toBe(false);
  });
});

describe('keys', () => {
  it('maps a team from a claim first, else the SPIFFE path pattern', () => {
    const teams = new TeamResolver({ claim: 'team', spiffePath: '/teams/{team}/*' });
    expect(teams.teamOf(limitCall({ principal: 'spiffe://example.org/teams/red/a/b' }))).toBe('red');
    expect(teams.teamOf(limitCall({ principal: 'spiffe://example.org/teams/red' }))).toBe('red');
    expect(teams.teamOf(limitCall({ principal: 'spiffe://example.org/teams/red', claims: { team: 'blue' } }))).toBe('blue');
    expect(teams.teamOf(limitCall({ principal: 'spiffe://example.org/agents/x' }))).toBeUndefined();
  });

  it('encodes values so none can close a hash tag, add a separator or a glob; long ones are hashed', () => {
    expect(encodeValue('spiffe://example.org/a')).toBe('spiffe%3A//example.org/a');
    expect(encodeValue('a}b{c,d=e:f*g?[h]')).toBe('a%7Db%7Bc%2Cd%3De%3Af%2Ag%3F%5Bh%5D');
    expect(encodeValue('é')).toBe('%C3%A9');
    expect(encodeValue('x'.repeat(200))).toMatch(/^h:[A-Za-z0-9_-]{43}$/);
  });
});

describe('the bucket (GCRA)', () => {
  it('admits the burst, then one per interval, and says when to retry', () => {
    const m = new MemoryCounters(() => 0);
    const op = { kind: 'r' as const, key: 'k', intervalUs: 100_000, toleranceUs: 500_000, cost: 1 };
    const t0 = 1_800_000_000_000_000;
    const burst = Array.from({ length: 6 }, () => m.decide([op], t0));
    expect(burst.map((v) => v.admitted)).toEqual([true, true, true, true, true, false]);
    expect(burst.map((v) => v.results[0]!.remaining)).toEqual([4, 3, 2, 1, 0, 0]);
    expect(burst[5]!.results[0]!.value).toBe(100_000);
    expect(m.decide([op], t0 + 99_999).admitted).toBe(false);
    expect(m.decide([op], t0 + 100_000).admitted).toBe(true);
    // A refused call consumes nothing, and a multi-limit decision is all or nothing.
    const other = { ...op, key: 'other' };
    expect(m.decide([other, op], t0 + 100_001).admitted).toBe(false);
    expect(m.decide([other], t0 + 100_001).results[0]!.remaining).toBe(4);
  });
});

describe('refusal headers', () => {
  const notices: LimitNotice[] = [
    { name: 'per-agent', unit: 'requests', quota: 10, windowSeconds: 1, remaining: 0, resetSeconds: 0.25 },
    { name: 'team-day', unit: 'tokens', quota: 100000, windowSeconds: 86400, remaining: 4200, resetSeconds: 3725.5 },
  ];
  it('renders Retry-After and the IETF fields for request rates', () => {
    expect(httpRateLimitHeaders(notices, 0.25)).toEqual({ 'retry-after': '1', 'ratelimit-policy': '"per-agent";q=10;w=1', ratelimit: '"per-agent";r=0;t=1' });
  });
  it("renders OpenAI's x-ratelimit-* headers", () => {
    expect(openAiRateLimitHeaders(notices)).toEqual({
      'x-ratelimit-limit-requests': '10',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '250ms',
      'x-ratelimit-limit-tokens': '100000',
      'x-ratelimit-remaining-tokens': '4200',
      'x-ratelimit-reset-tokens': '1h2m5.5s',
    });
    expect([openAiDuration(1), openAiDuration(360), openAiDuration(0.02)]).toEqual(['1s', '6m0s', '20ms']);
  });
});
