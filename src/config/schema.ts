/**
 * Wire shapes of the config files in routes/*.yaml, validated with zod at load time.
 *
 * The shape follows the Kubernetes Gateway API: one `Gateway` object (listener and global settings), `Backend`
 * objects (what Tollgate forwards to) and `Route` objects (which requests go to which backends). Secrets are never
 * inline: they are `valueFrom: {env}` or `valueFrom: {file}` references resolved when the config is loaded.
 */
import { z } from 'zod';
import { auditSpec } from '../audit/config.ts';
import { telemetrySpec } from '../telemetry/config.ts';
import { backendIdentitySpec, identitySpec } from '../guards/identity/config.ts';
import { policySpec } from '../guards/policy/config.ts';
import { redisSpec } from '../store/config.ts';
import { budgetSpec, limitsSpec, rateLimitSpec } from '../guards/limits/config.ts';
import { poolShape } from '../upstream/config.ts';
import { httpSpec, overloadSpec } from './listener.ts';
import { adminSpec } from '../server/admin-config.ts';
import { durationMs, objectName } from './common.ts';
import { routeSpec } from './route.ts';

export const API_VERSION = 'tollgate.dev/v1alpha1';


const metadata = z.strictObject({
  name: objectName,
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const secretRef = z.strictObject({
  valueFrom: z.union([
    z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') }),
    z.strictObject({ file: z.string().min(1) }),
  ]),
});
export type SecretRefSpec = z.infer<typeof secretRef>;

/** Header names whose values are credentials: they must come from a secret reference, never inline. */
const SENSITIVE_HEADER = /authorization|token|secret|api[-_]?key|cookie|password/i;

const headerSpec = z
  .strictObject({
    name: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name'),
    value: z.string().optional(),
    valueFrom: secretRef.shape.valueFrom.optional(),
  })
  .superRefine((h, ctx) => {
    if ((h.value === undefined) === (h.valueFrom === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'set exactly one of value or valueFrom' });
    }
    if (h.value !== undefined && SENSITIVE_HEADER.test(h.name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['value'],
        message: `header ${h.name} carries a credential: use valueFrom {env|file}, never an inline value`,
      });
    }
  });



const timeoutsSpec = z.strictObject({
  /** TCP+TLS connect to an upstream. */
  connectMs: durationMs.default(5_000),
  /** Time to the upstream's response headers. */
  headersMs: durationMs.default(60_000),
  /** Longest silence inside a response body (0 = no limit; SSE streams send keep-alives). */
  bodyIdleMs: durationMs.default(300_000),
  /** How long a stdio/HTTP upstream may take to answer initialize. */
  initializeMs: durationMs.default(10_000),
  /** Whole forwarded exchange, request to the end of the response body (0 = no limit; HTTP-forwarded protocols). */
  totalMs: durationMs.default(0),
});

/**
 * Retries of forwarded HTTP requests, only ever before the first byte of an answer reached the client, and only
 * with a body the gateway holds (a streamed body cannot be sent twice). A request that never reached the upstream
 * (connection refused, connect timeout) is retried whatever its method; other failures and the listed statuses
 * only for requests the protocol marks idempotent.
 */
const retriesSpec = z.strictObject({
  /** Attempts in all, the first included (1 = no retry). */
  attempts: z.number().int().min(1).max(5).default(2),
  /** Upstream statuses worth another attempt (idempotent requests only). */
  statuses: z.array(z.number().int().min(500).max(599)).default([]),
  /** Pause before each retry. */
  backoffMs: durationMs.max(10_000).default(25),
});

const gatewaySpec = z.strictObject({
  listener: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
      /** Public base URL the gateway is reached at (for metadata documents); derived from Host when absent. */
      publicUrl: z.url().optional(),
    })
    .prefault({}),
  /** Request bodies, origins, SSE keep-alives, listener timeouts and caps (src/config/listener.ts). */
  http: httpSpec.prefault({}),
  /** Load shedding (src/config/listener.ts). */
  overload: overloadSpec.prefault({}),
  timeouts: timeoutsSpec.prefault({}),
  shutdown: z.strictObject({ drainMs: durationMs.default(10_000) }).prefault({}),
  mcp: z
    .strictObject({
      /** A session idle this long is forgotten (its upstream sessions are closed). */
      sessionIdleMs: durationMs.default(30 * 60_000),
      /**
       * Separator between server name and tool/prompt name in federated names: within MCP's tool-name characters,
       * and starting with one a server name cannot hold ([A-Z_.]), so a federated name splits in one way only.
       */
      separator: z
        .string()
        .regex(/^[A-Z_.][A-Za-z0-9_.-]{0,3}$/, 'must be 1-4 of [A-Za-z0-9_.-] starting with one of [A-Z_.] (a server name cannot hold it)')
        .default('__'),
      /**
       * Keys that seal session ids (AES-256-GCM, key derived with HKDF from the secret), so any replica sharing them
       * can continue a session. The first key seals; every key opens (rotation: prepend the new key, drop the old one
       * once sessions sealed with it have expired). Empty: a random per-process key (one replica only).
       */
      sessionKeys: z
        .array(z.strictObject({ id: z.string().regex(/^[A-Za-z0-9_-]{1,16}$/, 'must be 1-16 of [A-Za-z0-9_-]'), valueFrom: secretRef.shape.valueFrom }))
        .default([]),
      /** Absolute lifetime of a session id (a sealed token cannot be extended; clients re-initialize after it). */
      sessionTtlMs: durationMs.default(24 * 3_600_000),
      /**
       * SSE resumability: events kept per stream for Last-Event-ID replay (0 disables event ids), for how long, and at
       * most how many bytes of them per session (its oldest events go first: a session never grows past it).
       */
      replay: z
        .strictObject({
          events: z.number().int().min(0).max(100_000).default(256),
          ttlMs: durationMs.default(5 * 60_000),
          maxBytes: z.number().int().min(1024).default(1024 * 1024),
          /** `retry` sent on every recorded stream: how long a client that lost its connection waits to resume. */
          retryMs: durationMs.default(1000),
        })
        .prefault({}),
      /**
       * Per-principal caps: reaching one refuses the newcomer (429 / TG_CAP_REACHED); nothing is evicted or
       * cancelled to make room, and nothing is created for a caller before it is authenticated.
       */
      limits: z
        .strictObject({
          /** Session-era sessions one principal may hold on one replica. */
          sessionsPerPrincipal: z.number().int().min(1).default(64),
          /** 2026-07-28 (stateless) contexts per principal: one per route, server and client self-description. */
          statelessContextsPerPrincipal: z.number().int().min(1).default(16),
          /** Long-lived streams per principal: legacy HTTP+SSE channels and subscriptions/listen streams. */
          streamsPerPrincipal: z.number().int().min(1).default(16),
          /** Multi round-trip exchanges parked for one principal's retries (2026 clients, session-era upstreams). */
          parkedPerPrincipal: z.number().int().min(1).default(32),
          /** Unanswered server-to-client requests (sampling, elicitation...) relayed to one session's client. */
          pendingServerRequests: z.number().int().min(1).default(64),
          /** Shortened federated names kept per upstream (names over 128 characters or outside the MCP rule). */
          aliasesPerServer: z.number().int().min(1).default(4096),
        })
        .prefault({}),
      /**
       * Merged tools/prompts/resources list pages kept per client session (src/protocols/mcp/list-cache.ts): dropped
       * when an upstream sends notifications/*\/list_changed on the session's stream, else after this long. 0: every
       * list is fetched from the upstreams. 2026-07-28 clients follow the upstreams' own caching hints instead.
       */
      listCacheTtlMs: durationMs.default(10_000),
      /** Legacy HTTP+SSE transport (2024-11-05) for old clients: GET <mount>[/<server>]<path>, POST <...><path>/message. */
      legacySse: z
        .strictObject({ enabled: z.boolean().default(true), path: z.string().regex(/^\/[A-Za-z0-9_.-]+$/).default('/sse') })
        .prefault({}),
    })
    .prefault({}),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .prefault({}),
  /** Where Tollgate keeps generated state (dev keys, audit segments). Relative to the config directory's parent. */
  dataDir: z.string().default('.tollgate'),
  /** Tracing and metrics (src/telemetry/config.ts). */
  telemetry: telemetrySpec.prefault({}),
  /** The tamper-evident audit log (src/audit/config.ts). */
  audit: auditSpec.prefault({}),
  /** Who may call: SPIFFE trust domains, OIDC and Kubernetes issuers, the dev trust domain (src/guards/identity). */
  identity: identitySpec.prefault({}),
  /** Rego policy compiled to WASM (src/guards/policy/config.ts); absent = no policy guard. */
  policy: policySpec.optional(),
  /** The shared store for state that must hold across replicas (src/store/config.ts); absent = in memory. */
  redis: redisSpec.optional(),
  /** Settings shared by every RateLimit and Budget object (src/guards/limits/config.ts). */
  limits: limitsSpec.prefault({}),
  /** The admin listener, its administrators and the operator console (src/server/admin-config.ts). */
  admin: adminSpec.prefault({}),
});
export type GatewaySpec = z.infer<typeof gatewaySpec>;

const stdioSpec = z.strictObject({
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.union([z.string(), secretRef])).default({}),
  cwd: z.string().optional(),
});

const backendSpec = z
  .strictObject({
    /**
     * Which protocol adapter serves it (`mcp`, `a2a`, `openai`, `kserve`...). Any name is accepted here; the loader
     * refuses one that no adapter registered with the gateway serves (src/gateway/registry.ts).
     */
    protocol: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be a protocol name (lowercase letters, digits, "-")'),
    /** Base URL of an HTTP backend (for MCP: its Streamable HTTP or SSE endpoint). */
    url: z.url().optional(),
    /** MCP only: the upstream's transport (`openapi`: an HTTP API described by an OpenAPI 3.x document). */
    transport: z.enum(['streamable-http', 'sse', 'stdio', 'openapi']).optional(),
    stdio: stdioSpec.optional(),
    /**
     * transport openapi: where the document is (`url` or a `file` relative to the config directory). The API base
     * URL is the backend's `url`; the document's `servers` are used only when `servers` here pins them (the first
     * document server that is one of these), so a document never decides where the backend's credentials go.
     */
    openapi: z
      .strictObject({ url: z.url().optional(), file: z.string().min(1).optional(), servers: z.array(z.url()).min(1).optional() })
      .refine((o) => (o.url === undefined) !== (o.file === undefined), 'set exactly one of url or file')
      .optional(),
    headers: z.array(headerSpec).default([]),
    pool: z
      .strictObject({
        connections: z.number().int().min(1).max(1024).default(16),
        keepAliveMs: durationMs.default(30_000),
      })
      .prefault({}),
    timeouts: timeoutsSpec.partial().optional(),
    /** Retries of forwarded HTTP requests (protocols forwarded by src/upstream/forwarder.ts). */
    retries: retriesSpec.prefault({}),
    /** Tollgate's own JWT-SVID for this backend (audience), from the SPIFFE Workload API. */
    identity: backendIdentitySpec.optional(),
    /** HTTP-forwarded protocols: several endpoints, balancing, health checks, ejection, circuit breaking (upstream/config.ts). */
    ...poolShape,
  })
  .superRefine((b, ctx) => {
    const transport = b.transport ?? (b.stdio ? 'stdio' : b.openapi ? 'openapi' : 'streamable-http');
    if (transport === 'openapi') {
      if (!b.openapi) ctx.addIssue({ code: 'custom', path: ['openapi'], message: 'an openapi backend needs openapi.url or openapi.file' });
      else if (b.url === undefined && b.openapi.servers === undefined)
        ctx.addIssue({ code: 'custom', path: ['url'], message: "an openapi backend needs url (the API base URL) or openapi.servers (the document's servers it may use)" });
    } else if (b.openapi) ctx.addIssue({ code: 'custom', path: ['openapi'], message: `openapi is not allowed with transport ${transport}` });
    if (transport === 'openapi') {
      if (b.stdio) ctx.addIssue({ code: 'custom', path: ['stdio'], message: 'stdio is not allowed with transport openapi' });
    } else if (transport === 'stdio') {
      if (b.protocol !== 'mcp') ctx.addIssue({ code: 'custom', path: ['stdio'], message: 'stdio is only for MCP backends' });
      if (!b.stdio) ctx.addIssue({ code: 'custom', path: ['stdio'], message: 'a stdio backend needs stdio.command' });
      if (b.url) ctx.addIssue({ code: 'custom', path: ['url'], message: 'a stdio backend has no url' });
    } else {
      if (b.url === undefined && b.endpoints === undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: 'an HTTP backend needs a url (or endpoints)' });
      if (b.url !== undefined && b.endpoints !== undefined) ctx.addIssue({ code: 'custom', path: ['endpoints'], message: 'set url or endpoints, not both' });
      if (b.stdio) ctx.addIssue({ code: 'custom', path: ['stdio'], message: `stdio is not allowed with transport ${transport}` });
    }
    if (b.endpoints !== undefined && b.protocol === 'mcp') {
      ctx.addIssue({ code: 'custom', path: ['endpoints'], message: 'endpoints (a pool of replicas) are for HTTP-forwarded protocols, not MCP: one url per MCP backend' });
    }
    if (b.identity && b.headers.some((h) => h.name.toLowerCase() === 'authorization')) {
      ctx.addIssue({ code: 'custom', path: ['identity'], message: 'identity and an Authorization header cannot both be set' });
    }
    if (b.transport && b.protocol !== 'mcp') {
      ctx.addIssue({ code: 'custom', path: ['transport'], message: 'transport is only for MCP backends' });
    }
  });
export type BackendSpec = z.infer<typeof backendSpec>;

export type { RouteSpec, VirtualServerSpec } from './route.ts';

export const gatewayDoc = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Gateway'),
  metadata,
  spec: gatewaySpec.prefault({}),
});
export const backendDoc = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Backend'),
  metadata,
  spec: backendSpec,
});
export const routeDoc = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Route'),
  metadata,
  spec: routeSpec,
});

/** A request-rate limit (token bucket, src/guards/limits). */
export const rateLimitDoc = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('RateLimit'),
  metadata,
  spec: rateLimitSpec,
});
/** A token and/or cost budget over a calendar window (src/guards/limits). */
export const budgetDoc = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Budget'),
  metadata,
  spec: budgetSpec,
});

export const configDoc = z.discriminatedUnion('kind', [gatewayDoc, backendDoc, routeDoc, rateLimitDoc, budgetDoc]);
export type ConfigDoc = z.infer<typeof configDoc>;

/** Defaults for a config directory with no Gateway object. */
export function defaultGatewaySpec(): GatewaySpec {
  return gatewaySpec.parse({});
}
