/**
 * Pipeline stages the bench switches on in the gateway, declaratively: a stage is the config it adds (Gateway spec
 * fragment, extra config documents, environment for secret references) and the headers a client must send (a
 * minted SVID...). The bench runs the gateway with every available stage on, and with each stage alone.
 *
 * To add a stage when its code lands on main: append an entry to STAGES (see identity below: a key and a bundle
 * file in setup, the Gateway and Route config it needs, the header it sends). `requires` names a file of that code,
 * so a checkout without it reports the stage as pending instead of failing.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newSigner, nowS, signJwt, spiffeBundle, type Signer } from '../test/helpers/jwt.ts';
import { startBenchRedis, type BenchRedis } from './fixtures/redis.ts';

/** What a stage may look at when it prepares itself for one gateway process. */
export interface StageContext {
  /** Repository root (for the CLI, policies...). */
  readonly root: string;
  /** A private directory for this gateway process (keys, bundles, audit segments). */
  readonly work: string;
  /** The gateway's config directory (the bench writes gateway.yaml, backends and the route there). */
  readonly configDir: string;
  /** Names of the scenario's backends and the route serving them. */
  readonly backends: readonly string[];
  readonly route: string;
  /** The gateway's base URL (known before it starts: the bench picks the port), e.g. for token audiences. */
  readonly gatewayUrl: string;
  /** An OTLP/HTTP sink (base URL) in the backends' process, for exporters. */
  readonly otlpUrl: string | undefined;
  /** What a stage's setup leaves for its other steps (keys, tokens), by stage. */
  readonly state: Map<string, unknown>;
}

/** One config document (apiVersion/kind/metadata/spec), written as YAML (JSON flow style). */
export type ConfigDocument = Record<string, unknown>;

export interface Stage {
  readonly name: string;
  /** One line for the results table. */
  readonly what: string;
  /** A file (relative to the repository root) whose presence means the stage's code is on this branch. */
  readonly requires: string;
  /** Stages this one cannot run without (policy needs an authenticated principal): included in its "alone" run. */
  readonly needs?: readonly string[];
  /** Deep-merged into the Gateway object's spec. */
  gateway?(ctx: StageContext): Record<string, unknown>;
  /** Deep-merged into the bench Route's spec (e.g. `auth`). */
  route?(ctx: StageContext): Record<string, unknown>;
  /** Runs once per gateway process before the config is written (mint keys, build a policy bundle...). */
  setup?(ctx: StageContext): Promise<void> | void;
  /** Extra config documents, by file name. */
  files?(ctx: StageContext): Record<string, ConfigDocument[]>;
  /** Environment of the gateway process (for `valueFrom: {env}` secret references). */
  env?(ctx: StageContext): Record<string, string>;
  /** Headers every bench request through the gateway carries (from initialize on). */
  headers?(ctx: StageContext): Promise<Record<string, string>> | Record<string, string>;
}

// The trust domain the default policy (policies/tollgate/grants.rego) grants every tool to; here it is a plain
// trust domain with a bundle file (the embedded dev issuer is off), as a SPIRE deployment would configure it.
const BENCH_TRUST_DOMAIN = 'dev.tollgate.local';

/** SPIFFE JWT-SVID authentication: an ES256 key of a trust domain, its bundle as a file, one SVID per run. */
const identity: Stage = {
  name: 'identity',
  what: 'SPIFFE JWT-SVID (ES256) from a trust-domain bundle file, verified-token cache',
  requires: 'src/guards/identity/guard.ts',
  setup(ctx) {
    const signer = newSigner('ES256', 'bench-1');
    const bundle = join(ctx.work, 'bench-bundle.json');
    writeFileSync(bundle, JSON.stringify(spiffeBundle([signer])));
    ctx.state.set('identity', { signer, bundle });
  },
  gateway(ctx) {
    const { bundle } = ctx.state.get('identity') as { bundle: string };
    return { identity: { audiences: [ctx.gatewayUrl], dev: { enabled: false }, trustDomains: [{ name: BENCH_TRUST_DOMAIN, bundle: { file: bundle } }] } };
  },
  route: () => ({ auth: { anonymous: false, spiffe: { trustDomains: [BENCH_TRUST_DOMAIN] } } }),
  headers: (ctx) => identityHeaders(ctx, 'agent/bench'),
};

/**
 * The identity stage's Authorization header for another principal of the bench trust domain (`path`: the SPIFFE ID's
 * path, e.g. `agent/bench-17`): what a many-principal scenario (bench/memory.ts --principals) sends.
 */
export function identityHeaders(ctx: Pick<StageContext, 'state' | 'gatewayUrl'>, path: string): Record<string, string> {
  const { signer } = ctx.state.get('identity') as { signer: Signer };
  const now = nowS();
  // The gateway's URL for checkouts that accept it, and the canonical URIs (RFC 8707) of the resources the bench
  // calls (/mcp, /v1 for the model stream scenario, /v2 for kserve-infer, /a2a for the a2a scenario) for those that bind tokens to the resource.
  const aud = [ctx.gatewayUrl, `${ctx.gatewayUrl}/mcp`, `${ctx.gatewayUrl}/v1`, `${ctx.gatewayUrl}/v2`, `${ctx.gatewayUrl}/a2a`];
  const token = signJwt(signer, { sub: `spiffe://${BENCH_TRUST_DOMAIN}/${path}`, aud, iat: now, exp: now + 3600 });
  return { authorization: `Bearer ${token}` };
}

/**
 * Rego compiled to WASM, evaluated in process: the committed default bundle (grants by SPIFFE ID, argument rules:
 * call-small's files/read_file path is checked against its root) and list filtering (the `visible` entrypoint).
 */
const policy: Stage = {
  name: 'policy',
  what: 'Rego -> WASM in process (default bundle: grants, argument rules, list filtering)',
  requires: 'src/guards/policy/guard.ts',
  needs: ['identity'],
  gateway: (ctx) => ({ policy: { bundle: join(ctx.root, 'bundles/tollgate.tar.gz'), watch: false } }),
};

/** Spans for every call (sampler always on) exported in OTLP/HTTP batches to a local sink, and Prometheus metrics. */
const telemetry: Stage = {
  name: 'telemetry',
  what: 'OpenTelemetry spans (every call, OTLP/HTTP batches to a local sink) + Prometheus metrics',
  requires: 'src/telemetry/tracing.ts',
  gateway: () => ({ telemetry: { tracing: { enabled: true }, metrics: { prometheus: true } } }),
  env: (ctx) => ({
    OTEL_EXPORTER_OTLP_ENDPOINT: ctx.otlpUrl ?? 'http://127.0.0.1:9',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_METRICS_EXPORTER: 'none',
    OTEL_LOGS_EXPORTER: 'none',
  }),
};

/** The tamper-evident audit log as configured by default: signed segments, fdatasync per batch, decision records. */
const audit: Stage = {
  name: 'audit',
  what: 'tamper-evident audit log (defaults: signed checkpoints, fdatasync per batch, decision records)',
  requires: 'src/audit/config.ts',
  gateway: () => ({ audit: { enabled: true } }),
};

/** One Redis on loopback for every gateway of a run (each uses its own key prefix); stopped with the runner. */
let benchRedis: Promise<BenchRedis> | undefined;

/**
 * Rate limit and cost budget in Redis: one EVALSHA per call deciding both (a bucket per route and upstream that
 * never refuses at bench rates, and a per-tool cost against a budget too large to run out), fail closed so a
 * store problem shows as errors rather than as a free pass. Keyed without the principal so the stage runs alone.
 */
const limits: Stage = {
  name: 'limits',
  what: 'Redis rate limit + cost budget (one EVALSHA per call, Redis on loopback)',
  requires: 'src/guards/limits/guard.ts',
  async setup(ctx) {
    benchRedis ??= startBenchRedis();
    ctx.state.set('limits', (await benchRedis).url);
  },
  gateway: (ctx) => ({
    // A command timeout of 1 s instead of the default 100 ms: on a machine shared with other work (loadavg 15-20
    // seen), a Redis answer can take over 100 ms, and the bench measures cost, not the fail mode.
    redis: { url: ctx.state.get('limits') as string, keyPrefix: `b${Math.random().toString(36).slice(2, 8)}:`, commandTimeoutMs: 1000 },
    // A price for every model, so the cost budget also counts the stream scenario's completions.
    limits: { toolCosts: [{ tool: '*', cost: 0.000001 }], prices: [{ model: '*', input: 0.1, output: 0.2 }] },
  }),
  // TOLLGATE_BENCH_LIMITS=rate (read by the bench process): the rate limit alone, no budget (the rate limit's burst of
  // 1,000,000 leases k = 8 units per round trip with the defaults). With the budget (default), the budget is leased
  // too (limits.lease.budgets: 8 reservations per round trip, its remaining is far above the 5% share).
  files: () => ({
    'limits.yaml': [
      { apiVersion: 'tollgate.dev/v1alpha1', kind: 'RateLimit', metadata: { name: 'bench-rate' }, spec: { key: ['route', 'upstream'], requests: 1_000_000, per: '1s', failMode: 'closed' } },
      ...(process.env.TOLLGATE_BENCH_LIMITS === 'rate'
        ? []
        : [{ apiVersion: 'tollgate.dev/v1alpha1', kind: 'Budget', metadata: { name: 'bench-cost' }, spec: { key: ['route'], window: 'month', cost: 1_000_000, failMode: 'closed' } }]),
    ],
  }),
};

/** Stages whose code is on main. Order is the pipeline's: identity -> policy -> limits -> telemetry/audit. */
export const STAGES: readonly Stage[] = [identity, policy, limits, telemetry, audit];

/** Stages announced but not on this branch yet: listed in results as pending so a missing one is visible. */
export const PENDING_STAGES: ReadonlyArray<{ name: string; what: string }> = ([] as Array<{ name: string; what: string }>).filter(
  (p) => !STAGES.some((s) => s.name === p.name),
);

export function availableStages(root: string): Stage[] {
  return STAGES.filter((s) => existsSync(join(root, s.requires)));
}

/**
 * Gateway variants to measure: `gateway` has every available stage on; with `each`, also each stage alone
 * (`gateway[identity]`...; with the stages it needs: `gateway[policy]` also authenticates) when there are several,
 * and no stage at all (`gateway[none]`), so the cost of a stage reads as a difference in the same run.
 */
export interface Variant {
  readonly label: string;
  readonly stages: readonly Stage[];
  /** Overrides the run's gateway log level (e.g. to measure the access log's share). */
  readonly logLevel?: string;
  /** Runs the gateway from another checkout (a baseline commit, measured interleaved in the same run). */
  readonly root?: string;
  /** Extra Node options for the gateway process (e.g. V8 heap flags). */
  readonly nodeOptions?: readonly string[];
  /** Extra environment for the gateway process, over the stages' (e.g. OTEL_TRACES_SAMPLER). */
  readonly env?: Readonly<Record<string, string>>;
}

export function variants(stages: readonly Stage[], opts: { each: boolean; none?: boolean }): Variant[] {
  const out: Variant[] = [{ label: 'gateway', stages }];
  if (stages.length === 0) return out;
  if (!opts.each) {
    if (opts.none) out.push({ label: 'gateway[none]', stages: [] });
    return out;
  }
  if (stages.length > 1) {
    for (const s of stages) out.push({ label: `gateway[${s.name}]`, stages: stages.filter((x) => x === s || s.needs?.includes(x.name)) });
  }
  out.push({ label: 'gateway[none]', stages: [] });
  return out;
}
