import type { IncomingHttpHeaders } from 'node:http';
import type { RouteSpec } from '../config/schema.ts';
import { Errors, type GatewayError } from './errors.ts';

/**
 * A protocol name as config and adapters spell it (`mcp`, `a2a`, `openai`, `kserve`, ...). Open-ended: the protocols
 * a gateway serves are the adapters registered with it (src/gateway/registry.ts), not a list in the core.
 */
export type Protocol = string;

/** Who is calling. Every identity issuer (SPIFFE, OIDC, Kubernetes) maps to this one shape. */
export interface Principal {
  /** SPIFFE ID (`spiffe://td/path`), or the issuer-qualified subject for other issuers. */
  readonly id: string;
  readonly issuer: 'spiffe' | 'oidc' | 'kubernetes' | 'anonymous';
  readonly trustDomain: string;
  /** Path part of the SPIFFE ID, e.g. `/ns/prod/sa/agent`. */
  readonly path: string;
  readonly segments: readonly string[];
  readonly claims: Readonly<Record<string, unknown>>;
  /** Expiry of the credential, ms since epoch (0 if none). */
  readonly expiresAt: number;
}

/** What a call acts on: the thing a policy, a limit or an audit record names. */
export interface Target {
  readonly kind: 'tool' | 'prompt' | 'resource' | 'skill' | 'model' | 'task' | 'server';
  /** The caller-visible name (for a federated MCP tool: `<server>__<tool>`; for a resource: its URI). */
  readonly name: string;
  /**
   * The backend that owns it: set only once the adapter resolved the name to a configured backend (limits key on
   * `tool` and `model` only then, so a caller cannot mint counters with made-up names).
   */
  readonly server?: string | undefined;
  /** Its name at that backend (differs from `name` when federation namespaced it). */
  readonly local?: string | undefined;
  /** The model version the request names (KServe `/v2/models/<m>/versions/<v>/...`), when it names one. */
  readonly version?: string | undefined;
}

/** Policy decision attached to a call. */
export interface Decision {
  readonly id: string;
  readonly allow: boolean;
  readonly reason?: string | undefined;
  /** Obligations other guards honour (rate-limit class, cost multiplier, audit redactions...). */
  readonly obligations?: Readonly<Record<string, unknown>> | undefined;
}

/**
 * What a call used. Adapters of metered protocols (models) fill the token counts: while a response streams they keep
 * `outputTokens` current (counted from the chunks relayed so far), and when the backend reports usage they replace
 * the counts with it and set `reported`. So when a stream breaks, `usage` holds what was streamed, and the budget
 * guard charges that. `cost` is set by the limits guard when it settles (currency units, after `cost_multiplier`).
 */
export interface Usage {
  inputTokens?: number;
  outputTokens?: number;
  cost?: number;
  bytesIn?: number;
  bytesOut?: number;
  /** True when the token counts came from the backend's own usage report, not from counting. */
  reported?: boolean;
}

/**
 * The reservation estimate a metered adapter (models) sets on the Call before the pipeline runs: the budget guard
 * reserves `inputTokens + maxOutputTokens` (or its configured default output when the request states none) before
 * forwarding, and reconciles with `usage` after. Adapters choose how to estimate input (bytes / N, or the backend's
 * tokenizer); an over-estimate only holds budget back until the call settles, an under-estimate can overshoot.
 */
export interface UsageEstimate {
  /** Prompt tokens the request will cost, estimated. */
  readonly inputTokens: number;
  /** `max_tokens` / `max_completion_tokens` (or the protocol's equivalent) as the client asked; undefined if unset. */
  readonly maxOutputTokens?: number | undefined;
}

/** What the forwarder measured of the upstream exchange (src/upstream/forwarder.ts). */
export interface Transfer {
  /** Request body bytes sent upstream. */
  requestBytes: number;
  /** Response body bytes received from upstream. */
  responseBytes: number;
  /** Attempts made (1 unless a retry happened before the first byte reached the client). */
  attempts: number;
  /** Time from the first attempt to the upstream's response headers, ms (-1: none arrived). */
  firstByteMs: number;
  /** Time from the first attempt to the end of the response body, ms (-1: not finished). */
  totalMs: number;
}

/**
 * What a model call (OpenAI-compatible, KServe) adds for telemetry (the GenAI conventions) and the audit record.
 * The model asked for is `target.name` (aliases resolved) and `requested`; the adapter fills the rest as the answer
 * arrives.
 */
export interface ModelInfo {
  /** gen_ai.operation.name: `chat`, `text_completion`, `embeddings`... */
  operation?: string | undefined;
  /** The name the caller used, when it is not `target.name` (an alias). */
  requested?: string | undefined;
  /** The model the backend named in its answer (gen_ai.response.model). */
  response?: string | undefined;
  /** gen_ai.response.finish_reasons. */
  finishReasons?: string[] | undefined;
  /** gen_ai.response.id: the answer's `id` (`chatcmpl-...`, a Responses API `resp_...`). */
  responseId?: string | undefined;
  /**
   * How the call's token usage is known: `reported` by the backend, `counted` by the gateway from what it relayed
   * (a stream that broke, a backend that reports none), or `unmetered` (the protocol gives nothing to count).
   */
  metering?: 'reported' | 'counted' | 'unmetered' | undefined;
  /** The backend sent an error inside a stream it had started (relayed to the client as it was). */
  streamError?: boolean | undefined;
}

export type Outcome = 'ok' | 'error' | 'denied' | 'limited' | 'unauthenticated' | 'upstream_error' | 'cancelled';

/** The route a call came in on, as guards need to see it: its name and its (frozen) spec from the snapshot. */
export interface RouteRef {
  readonly name: string;
  /** Route-level settings; each guard reads its own section (e.g. `auth`). */
  readonly spec: RouteSpec;
}

/** Request metadata a guard may need without seeing the protocol. */
export interface CallRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string;
  /**
   * The path of the protected resource (RFC 8707 / RFC 9728) the request is for, when the adapter knows it better
   * than the URL does (MCP: `<mount>` or `<mount>/<server>`, whatever transport suffix the URL carries).
   */
  readonly resource?: string | undefined;
}

/**
 * The protocol-neutral unit every guard sees. Adapters create one per call, fill in what their protocol knows, and
 * hand it to the pipeline. A class (not object literals) so every Call has one hidden class on the hot path.
 */
export class Call {
  readonly id: string;
  readonly protocol: Protocol;
  readonly operation: string;
  readonly route: RouteRef;
  readonly request: CallRequest;
  readonly startedAt: number;
  readonly startNs: bigint;
  /** Backend name (for federated MCP: the owning upstream). */
  upstream: string | undefined;
  target: Target | undefined;
  /** Tool arguments, prompt arguments, model request parameters... as parsed from the request. */
  args: unknown;
  /** JSON-RPC request id when the protocol has one. */
  rpcId: string | number | undefined;
  /** MCP/A2A session or context id, when one exists. */
  sessionId: string | undefined;
  principal: Principal | undefined;
  decision: Decision | undefined;
  usage: Usage | undefined;
  /** Set by a metered adapter before admit (see UsageEstimate); undefined for calls that use no tokens. */
  estimate: UsageEstimate | undefined;
  /**
   * Set by the limits guard when a token budget reserved output for this call: the most output tokens the adapter may
   * let the upstream produce (it sets `max_tokens` to this when the client set none, so a budget is never overshot).
   */
  outputTokenCap: number | undefined;
  /** Set by model adapters (see ModelInfo); undefined for other calls. */
  model: ModelInfo | undefined;
  outcome: Outcome;
  error: GatewayError | undefined;
  /** Upstream HTTP status or equivalent. */
  status: number;
  /** Bytes and timings of the upstream exchange, when the call was forwarded over HTTP by the forwarder. */
  transfer: Transfer | undefined;
  /** Guards whose settle step failed (or timed out): recorded by the audit guard, which settles last. */
  settleFailures: string[] | undefined;
  /** Per-call scratch space for guards (e.g. span handles, limiter reservations), keyed by guard name. */
  readonly scratch: Map<string, unknown>;

  constructor(init: {
    id: string;
    protocol: Protocol;
    operation: string;
    route: RouteRef;
    request: CallRequest;
    target?: Target | undefined;
    args?: unknown;
    rpcId?: string | number | undefined;
    sessionId?: string | undefined;
    upstream?: string | undefined;
  }) {
    this.id = init.id;
    this.protocol = init.protocol;
    this.operation = init.operation;
    this.route = init.route;
    this.request = init.request;
    this.startedAt = Date.now();
    this.startNs = process.hrtime.bigint();
    this.upstream = init.upstream;
    this.target = init.target;
    this.args = init.args;
    this.rpcId = init.rpcId;
    this.sessionId = init.sessionId;
    this.principal = undefined;
    this.decision = undefined;
    this.usage = undefined;
    this.estimate = undefined;
    this.outputTokenCap = undefined;
    this.model = undefined;
    this.outcome = 'ok';
    this.error = undefined;
    this.status = 0;
    this.transfer = undefined;
    this.settleFailures = undefined;
    this.scratch = new Map();
  }

  /** Elapsed time since the call started, in milliseconds (sub-ms precision). */
  elapsedMs(): number {
    return Number(process.hrtime.bigint() - this.startNs) / 1e6;
  }
}

/** The outcome a refused or failed call is recorded with, derived from its error. */
export function outcomeOf(err: GatewayError): Outcome {
  switch (err.def) {
    case Errors.POLICY_DENIED:
    case Errors.POLICY_ERROR:
    case Errors.INSUFFICIENT_SCOPE:
      return 'denied';
    case Errors.RATE_LIMITED:
    case Errors.BUDGET_EXCEEDED:
    case Errors.LIMITER_UNAVAILABLE:
    case Errors.CAP_REACHED:
      return 'limited';
    case Errors.UNAUTHENTICATED:
    case Errors.INVALID_TOKEN:
    case Errors.INVALID_AUTH_REQUEST:
      return 'unauthenticated';
    case Errors.UPSTREAM_UNAVAILABLE:
    case Errors.UPSTREAM_TIMEOUT:
    case Errors.UPSTREAM_BAD_RESPONSE:
    case Errors.UPSTREAM_OVERLOADED:
      return 'upstream_error';
    case Errors.REQUEST_CANCELLED:
      return 'cancelled';
    default:
      return 'error';
  }
}

/** The call's model facts, made on first use (adapters of model traffic fill them as the answer goes by). */
export function modelOf(call: Call): NonNullable<Call['model']> {
  return (call.model ??= {});
}
