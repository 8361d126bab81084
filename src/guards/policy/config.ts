/**
 * Config of the policy guard: the Gateway-level `policy` section and the Route-level `policy` override.
 * Referenced from src/config/schema.ts; paths are relative to the config directory.
 */
import { z } from 'zod';

// Same shape as schema.ts's secretRef; defined here because schema.ts imports this module (an import back would
// be circular and read secretRef before it is initialised).
const secretRef = z.strictObject({
  valueFrom: z.union([
    z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') }),
    z.strictObject({ file: z.string().min(1) }),
  ]),
});
export type PolicySecretRef = z.infer<typeof secretRef>;

/** An OPA entrypoint, slash-separated: `tollgate/decision` is `data.tollgate.decision`. */
export const entrypointName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*(\/[A-Za-z_][A-Za-z0-9_]*)*$/, 'must be a slash-separated rule path such as tollgate/decision');

const jsonPointer = z.string().regex(/^(\/[^/]+)+$/, 'must be a JSON pointer such as /target/arguments/password');

const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name')
  .transform((h) => h.toLowerCase());

const verificationSpec = z
  .strictObject({
    /** Verification keys by key id: PEM public key (RS/PS/ES) or HMAC secret (HS), always from a secret reference. */
    keys: z
      .record(
        z.string().min(1),
        z.strictObject({
          algorithm: z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'HS256', 'HS384', 'HS512']),
          key: secretRef,
          scope: z.string().optional(),
        }),
      )
      .refine((k) => Object.keys(k).length > 0, 'at least one key'),
    /** Key to use whatever the token says (OPA's `keyid`); otherwise the JWT's `kid` header picks it. */
    keyId: z.string().optional(),
    /** Required `scope` claim (OPA semantics: must equal the token's scope; empty matches no scope). */
    scope: z.string().optional(),
    /** Bundle files left out of verification (glob patterns, OPA's `exclude_files`). */
    exclude: z.array(z.string()).default([]),
  })
  .optional();

const serviceSpec = z.strictObject({
  /** URL of the bundle (an OPA bundle server resource, e.g. https://bundles.example.com/bundles/tollgate.tar.gz). */
  url: z.url(),
  /** Polling delay, randomised between min and max like OPA's min/max_delay_seconds. */
  minDelayMs: z.number().int().min(100).default(10_000),
  maxDelayMs: z.number().int().min(100).default(20_000),
  timeoutMs: z.number().int().min(100).default(10_000),
  /** Request headers (credentials through valueFrom only). */
  headers: z
    .array(z.strictObject({ name: headerName, value: z.string().optional(), valueFrom: secretRef.shape.valueFrom.optional() }))
    .default([]),
  /** Largest bundle accepted (compressed and uncompressed). */
  maxBytes: z.number().int().min(1024).default(64 * 1024 * 1024),
});

const entrypointsSpec = z.strictObject({
  /** Rule evaluated per call: a boolean, or {allow, reason?, obligations?}. */
  decision: entrypointName.optional(),
  /** Rule evaluated once per list: the set of visible target names given `input.targets`; null = lists unfiltered. */
  visible: entrypointName.nullable().optional(),
});

export const policySpec = z
  .strictObject({
    /** Rego source directory, compiled with `opa build -t wasm` when opa is on PATH (or TOLLGATE_OPA). */
    dir: z.string().min(1).optional(),
    /** A built bundle (tar.gz, e.g. from `tollgate policy build`); used when the directory cannot be built. */
    bundle: z.string().min(1).optional(),
    /** Rebuild/reload when files in `dir` or the `bundle` file change. */
    watch: z.boolean().default(true),
    /**
     * Safety net of the watch: how often a stat digest (names, inodes, sizes, mtimes) of the watched files is compared
     * with the last one seen, catching a change no file event reported (0: never).
     */
    checkIntervalMs: z.number().int().min(0).default(1000),
    /** Poll an OPA-compatible bundle server; its bundle takes precedence over local ones once fetched. */
    service: serviceSpec.optional(),
    /** Verify `.signatures.json` of every bundle that is loaded from a file or a bundle server. */
    verification: verificationSpec,
    entrypoints: entrypointsSpec.prefault({}),
    /** Bounds of the WASM memory, in 64 KiB pages: evaluation beyond the maximum fails (closed). */
    memory: z
      .strictObject({
        initialPages: z.number().int().min(2).max(65536).default(16),
        maxPages: z.number().int().min(2).max(65536).default(512),
      })
      .prefault({})
      .refine((m) => m.maxPages >= m.initialPages, 'maxPages must be >= initialPages'),
    input: z
      .strictObject({
        /** `tollgate`: Tollgate's input document (policies/README.md); `envoy`: the OPA-Envoy ext_authz shape. */
        shape: z.enum(['tollgate', 'envoy']).default('tollgate'),
        /** Request headers copied into the input (lower case). Nothing else of the request is exposed. */
        headers: z.array(headerName).default([]),
        /** Principal claims copied into the input: all, or only these. */
        claims: z.union([z.literal('all'), z.array(z.string())]).default('all'),
        /** For model and skill targets: request fields left out of `target.arguments` (bulky content, not parameters). */
        dropArguments: z.array(z.string()).default(['messages', 'prompt', 'input', 'inputs', 'contents', 'parts']),
      })
      .prefault({}),
    /**
     * Memo of list filters (the visible entrypoint), per policy revision, keyed by the whole list input but its time:
     * a rule reading `input.request.time_ns` sees it at most ttlMs late. ttlMs 0 evaluates every list.
     */
    visibleCache: z
      .strictObject({
        maxEntries: z.number().int().min(0).max(1_000_000).default(1000),
        ttlMs: z.number().int().min(0).max(3_600_000).default(10_000),
      })
      .prefault({}),
    decisionLog: z
      .strictObject({
        /** Input paths erased from decision-log events (JSON pointers into the input, e.g. /target/arguments/password). */
        mask: z.array(jsonPointer).default([]),
      })
      .prefault({}),
  })
  .superRefine((p, ctx) => {
    if (p.dir === undefined && p.bundle === undefined && p.service === undefined) {
      ctx.addIssue({ code: 'custom', message: 'set at least one of dir, bundle or service' });
    }
    if (p.service && p.service.maxDelayMs < p.service.minDelayMs) {
      ctx.addIssue({ code: 'custom', path: ['service', 'maxDelayMs'], message: 'maxDelayMs must be >= minDelayMs' });
    }
    for (const [i, h] of (p.service?.headers ?? []).entries()) {
      if ((h.value === undefined) === (h.valueFrom === undefined)) {
        ctx.addIssue({ code: 'custom', path: ['service', 'headers', i], message: 'set exactly one of value or valueFrom' });
      } else if (h.value !== undefined && /authorization|token|secret|api[-_]?key|cookie|password/i.test(h.name)) {
        ctx.addIssue({ code: 'custom', path: ['service', 'headers', i, 'value'], message: `header ${h.name} carries a credential: use valueFrom {env|file}` });
      }
    }
  });
export type PolicySpec = z.infer<typeof policySpec>;

/** Route-level override: another entrypoint for this route's calls, or (explicitly) no policy at all. */
export const routePolicySpec = z.strictObject({
  enabled: z.boolean().default(true),
  entrypoints: entrypointsSpec.optional(),
});
export type RoutePolicySpec = z.infer<typeof routePolicySpec>;

export const DEFAULT_ENTRYPOINTS = Object.freeze({
  tollgate: { decision: 'tollgate/decision', visible: 'tollgate/visible' },
  // OPA-Envoy's default decision path; Envoy policies have no notion of list filtering.
  envoy: { decision: 'envoy/authz/allow', visible: null },
});

/** Entrypoints in force for the gateway (defaults filled in by input shape). */
export function gatewayEntrypoints(spec: PolicySpec): { decision: string; visible: string | null } {
  const d = DEFAULT_ENTRYPOINTS[spec.input.shape];
  return {
    decision: spec.entrypoints.decision ?? d.decision,
    visible: spec.entrypoints.visible === undefined ? d.visible : spec.entrypoints.visible,
  };
}

/** Every entrypoint a config names (gateway level and route overrides), sorted: what a build must compile. */
export function configuredEntrypoints(spec: PolicySpec, routes: Iterable<{ readonly policy?: RoutePolicySpec | undefined }>): string[] {
  const g = gatewayEntrypoints(spec);
  const set = new Set<string>([g.decision]);
  if (g.visible !== null) set.add(g.visible);
  for (const route of routes) {
    const e = route.policy?.entrypoints;
    if (e?.decision !== undefined) set.add(e.decision);
    if (e?.visible !== undefined && e.visible !== null) set.add(e.visible);
  }
  return [...set].sort();
}
