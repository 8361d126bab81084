/**
 * The one registry of every error Tollgate returns to a caller.
 *
 * Each entry has a stable `code` (clients and operators grep for it; a code never changes meaning), the HTTP status
 * used when the error ends an HTTP exchange, the JSON-RPC code used by JSON-RPC protocols (MCP, A2A), and a default
 * message. `inBand` marks errors that JSON-RPC adapters deliver as an ordinary JSON-RPC error response (HTTP 200)
 * because they answer a well-formed request; the others are transport-level and keep their HTTP status.
 *
 * JSON-RPC codes: the standard ones (-32700..-32600), MCP's own (-32002 resource not found, -32020/-32022 for the
 * 2026 revision), A2A's (-32001..-32009), and Tollgate's own range -32060..-32089 for gateway decisions. MCP
 * 2026-07-28 clients get Tollgate's own codes shifted out of -32000..-32099 by 1000 (-31062...), as that revision
 * reserves the range: the one rule for it is src/protocols/mcp/respond.ts `modernCode`.
 */
export interface ErrorDef {
  readonly code: string;
  readonly status: number;
  readonly rpc: number;
  readonly inBand: boolean;
  readonly message: string;
}

function def(code: string, status: number, rpc: number, inBand: boolean, message: string): ErrorDef {
  return Object.freeze({ code, status, rpc, inBand, message });
}

export const Errors = Object.freeze({
  // Request shape (any protocol)
  PARSE_ERROR: def('TG_PARSE_ERROR', 400, -32700, false, 'Parse error: the body is not valid JSON'),
  INVALID_REQUEST: def('TG_INVALID_REQUEST', 400, -32600, false, 'Invalid request'),
  BATCH_NOT_SUPPORTED: def('TG_BATCH_NOT_SUPPORTED', 400, -32600, false, 'JSON-RPC batches are not supported'),
  METHOD_NOT_FOUND: def('TG_METHOD_NOT_FOUND', 404, -32601, true, 'Method not found'),
  INVALID_PARAMS: def('TG_INVALID_PARAMS', 400, -32602, true, 'Invalid params'),
  PAYLOAD_TOO_LARGE: def('TG_PAYLOAD_TOO_LARGE', 413, -32600, false, 'Request body exceeds the configured limit'),
  UNSUPPORTED_MEDIA_TYPE: def('TG_UNSUPPORTED_MEDIA_TYPE', 415, -32600, false, 'Content-Type must be application/json'),
  NOT_ACCEPTABLE: def('TG_NOT_ACCEPTABLE', 406, -32600, false, 'The Accept header does not allow a response type this endpoint produces'),
  METHOD_NOT_ALLOWED: def('TG_METHOD_NOT_ALLOWED', 405, -32600, false, 'HTTP method not allowed on this endpoint'),
  NOT_FOUND: def('TG_NOT_FOUND', 404, -32601, false, 'No route matches this path'),
  ORIGIN_FORBIDDEN: def('TG_ORIGIN_FORBIDDEN', 403, -32600, false, 'Origin not allowed'),
  INTERNAL: def('TG_INTERNAL', 500, -32603, true, 'Internal gateway error'),
  SHUTTING_DOWN: def('TG_SHUTTING_DOWN', 503, -32603, false, 'The gateway is shutting down'),
  /**
   * Load shedding (src/gateway/admission.ts): too many calls in flight and the wait queue full, no slot freed in
   * time, or the event loop lagging. Sent with Retry-After; nothing already admitted was cancelled to make room.
   */
  OVERLOADED: def('TG_OVERLOADED', 503, -32076, false, 'The gateway is overloaded; retry later'),

  // MCP transport and session
  MCP_SESSION_REQUIRED: def('TG_MCP_SESSION_REQUIRED', 400, -32600, false, 'Bad Request: Mcp-Session-Id header is required'),
  MCP_SESSION_NOT_FOUND: def('TG_MCP_SESSION_NOT_FOUND', 404, -32001, false, 'Session not found'),
  MCP_ALREADY_INITIALIZED: def('TG_MCP_ALREADY_INITIALIZED', 400, -32600, false, 'Invalid Request: the session is already initialized'),
  MCP_UNSUPPORTED_PROTOCOL_VERSION: def('TG_MCP_UNSUPPORTED_PROTOCOL_VERSION', 400, -32600, false, 'Unsupported MCP-Protocol-Version'),
  MCP_UNKNOWN_TOOL: def('TG_MCP_UNKNOWN_TOOL', 200, -32602, true, 'Unknown tool'),
  MCP_UNKNOWN_PROMPT: def('TG_MCP_UNKNOWN_PROMPT', 200, -32602, true, 'Unknown prompt'),
  MCP_RESOURCE_NOT_FOUND: def('TG_MCP_RESOURCE_NOT_FOUND', 200, -32002, true, 'Resource not found'),
  OPENAPI_PATH_PARAM: def('TG_OPENAPI_PATH_PARAM', 200, -32602, true, 'Invalid params: a path parameter value would change the request path'),
  MCP_INVALID_CURSOR: def('TG_MCP_INVALID_CURSOR', 200, -32602, true, 'Invalid pagination cursor'),
  MCP_STREAM_CONFLICT: def('TG_MCP_STREAM_CONFLICT', 409, -32600, false, 'Conflict: only one server stream per session is allowed'),
  REQUEST_CANCELLED: def('TG_REQUEST_CANCELLED', 499, -32800, true, 'Request cancelled by the client'),
  MCP_UNKNOWN_SERVER: def('TG_MCP_UNKNOWN_SERVER', 404, -32601, false, 'No MCP server of that name on this route'),
  MCP_EVENT_ID_OUT_OF_RANGE: def('TG_MCP_EVENT_ID_OUT_OF_RANGE', 400, -32600, false, 'Bad Request: Last-Event-ID is outside the replay window'),
  MCP_SESSION_EXPIRED: def('TG_MCP_SESSION_EXPIRED', 404, -32001, false, 'Session expired'),
  MCP_SERVER_REQUEST_REFUSED: def('TG_MCP_SERVER_REQUEST_REFUSED', 200, -32601, true, 'This server-to-client request cannot be relayed'),
  MCP_UNKNOWN_RESPONSE: def('TG_MCP_UNKNOWN_RESPONSE', 400, -32600, false, 'Invalid Request: no server-to-client request with this id is pending on this session'),
  MCP_SESSION_UNVERIFIABLE: def('TG_MCP_SESSION_UNVERIFIABLE', 404, -32001, false, 'Session cannot be continued here now (its revocation cannot be checked); re-initialize'),
  // MCP 2026-07-28 (stateless revision)
  MCP_HEADER_MISMATCH: def('TG_MCP_HEADER_MISMATCH', 400, -32020, false, 'Bad Request: the request headers and body disagree'),
  MCP_VERSION_NOT_SUPPORTED: def('TG_MCP_VERSION_NOT_SUPPORTED', 400, -32022, false, 'Unsupported protocol version'),
  MCP_INVALID_ENVELOPE: def('TG_MCP_INVALID_ENVELOPE', 400, -32602, false, 'Invalid params: invalid per-request _meta envelope'),
  /**
   * An upstream refused a request that needs a client capability the caller did not declare. Relayed as the
   * upstream wrote it; defined here for its HTTP status, which the 2026-07-28 transport fixes at 400.
   */
  MCP_MISSING_CLIENT_CAPABILITY: def('TG_MCP_MISSING_CLIENT_CAPABILITY', 400, -32021, false, 'Missing required client capability'),
  MCP_REQUEST_STATE_INVALID: def('TG_MCP_REQUEST_STATE_INVALID', 200, -32602, true, 'Invalid params: requestState is unknown, expired or not yours'),

  // A2A (JSON-RPC codes from the A2A specification; REST renders the same errors as google.rpc.Status)
  /** The task does not exist, or belongs to another identity (the two are indistinguishable on purpose). */
  A2A_TASK_NOT_FOUND: def('TG_A2A_TASK_NOT_FOUND', 404, -32001, true, 'Task not found'),
  /** The A2A-Version header names a version the gateway does not serve (1.0 and 0.3 are served). */
  A2A_VERSION_NOT_SUPPORTED: def('TG_A2A_VERSION_NOT_SUPPORTED', 400, -32009, true, 'A2A protocol version not supported'),
  /** A request body whose Content-Type is not JSON (application/json, application/a2a+json). */
  A2A_CONTENT_TYPE_NOT_SUPPORTED: def('TG_A2A_CONTENT_TYPE_NOT_SUPPORTED', 415, -32005, false, 'Content type not supported'),
  /** No agent of that name on this route. */
  A2A_UNKNOWN_AGENT: def('TG_A2A_UNKNOWN_AGENT', 404, -32601, false, 'No agent of that name on this route'),
  /** A push-notification URL the configuration does not allow (scheme, host, or an address it resolves to). */
  A2A_PUSH_URL_REFUSED: def('TG_A2A_PUSH_URL_REFUSED', 400, -32602, true, 'Push-notification URL not allowed'),
  /** The gateway could not deliver an agent's push notification to the caller's webhook (refused, redirected, failing). */
  A2A_PUSH_DELIVERY_FAILED: def('TG_A2A_PUSH_DELIVERY_FAILED', 502, -32603, false, 'Push notification not delivered'),
  /** A push-notification delivery still under way at the drain deadline (shutdown): cut, it may or may not have arrived. */
  A2A_PUSH_DELIVERY_CUT: def('TG_A2A_PUSH_DELIVERY_CUT', 503, -32603, false, 'Push notification delivery cut short by shutdown'),
  /** The operation exists in A2A but the agent's card, as the gateway serves it, does not offer it (streaming off). */
  A2A_UNSUPPORTED_OPERATION: def('TG_A2A_UNSUPPORTED_OPERATION', 400, -32004, true, 'This operation is not supported'),
  /** Push notifications are off on the card the gateway serves (the route allows no push URL, or the agent has none). */
  A2A_PUSH_NOT_SUPPORTED: def('TG_A2A_PUSH_NOT_SUPPORTED', 400, -32003, true, 'Push notifications are not supported'),
  /**
   * An A2A 0.3 caller asked for the authenticated extended card of an agent whose card, as the gateway serves it,
   * offers none (0.3 AuthenticatedExtendedCardNotConfiguredError; a 1.0 caller gets A2A_UNSUPPORTED_OPERATION).
   */
  A2A_EXTENDED_CARD_NOT_CONFIGURED: def('TG_A2A_EXTENDED_CARD_NOT_CONFIGURED', 400, -32007, true, 'Authenticated extended card is not configured'),
  /** The agent's answer is not a valid A2A answer (the agent card or a response the gateway must read). */
  A2A_INVALID_AGENT_RESPONSE: def('TG_A2A_INVALID_AGENT_RESPONSE', 502, -32006, true, 'The agent returned an invalid response'),

  // Identity (RFC 6750 / RFC 9728 semantics)
  UNAUTHENTICATED: def('TG_UNAUTHENTICATED', 401, -32060, false, 'Authentication required'),
  INVALID_TOKEN: def('TG_INVALID_TOKEN', 401, -32060, false, 'Invalid token'),
  /** RFC 6750 invalid_request: repeated Authorization headers, a token in the header and the query, `Bearer` with no or two tokens. */
  INVALID_AUTH_REQUEST: def('TG_INVALID_AUTH_REQUEST', 400, -32060, false, 'Malformed authorization request'),
  INSUFFICIENT_SCOPE: def('TG_INSUFFICIENT_SCOPE', 403, -32061, false, 'Insufficient scope'),
  SESSION_IDENTITY_MISMATCH: def('TG_SESSION_IDENTITY_MISMATCH', 404, -32001, false, 'Session not found for this identity'),
  ADMIN_FORBIDDEN: def('TG_ADMIN_FORBIDDEN', 403, -32069, false, 'This identity is not an administrator of this gateway'),

  // Policy
  POLICY_DENIED: def('TG_POLICY_DENIED', 403, -32062, true, 'Denied by policy'),
  POLICY_ERROR: def('TG_POLICY_ERROR', 403, -32063, true, 'Policy evaluation failed; denied (fail closed)'),

  // Limits
  RATE_LIMITED: def('TG_RATE_LIMITED', 429, -32064, true, 'Rate limit exceeded'),
  BUDGET_EXCEEDED: def('TG_BUDGET_EXCEEDED', 429, -32065, true, 'Token or cost budget exceeded'),
  LIMITER_UNAVAILABLE: def('TG_LIMITER_UNAVAILABLE', 503, -32066, true, 'Limit store unavailable; denied (fail closed)'),
  /** A per-principal cap (sessions, streams, stateless contexts, parked exchanges...) is reached: the newcomer is refused. */
  CAP_REACHED: def('TG_CAP_REACHED', 429, -32068, false, 'Too many open at once for this identity; close some and retry'),

  // Shared state (Redis) a decision depends on could not be reached
  STORE_UNAVAILABLE: def('TG_STORE_UNAVAILABLE', 503, -32073, false, 'The shared store is unavailable; nothing was changed on other replicas'),

  // Audit back-pressure
  AUDIT_UNAVAILABLE: def('TG_AUDIT_UNAVAILABLE', 503, -32067, true, 'Audit sink is stuck; call refused so no record is lost'),

  // Upstreams
  UPSTREAM_UNAVAILABLE: def('TG_UPSTREAM_UNAVAILABLE', 502, -32070, true, 'Upstream unavailable'),
  UPSTREAM_TIMEOUT: def('TG_UPSTREAM_TIMEOUT', 504, -32071, true, 'Upstream timed out'),
  UPSTREAM_BAD_RESPONSE: def('TG_UPSTREAM_BAD_RESPONSE', 502, -32072, true, 'Upstream returned an invalid response'),
  // Model traffic (OpenAI-compatible, KServe)
  /** No backend of the route serves a model of that name (told only after policy saw the name). */
  MODEL_NOT_FOUND: def('TG_MODEL_NOT_FOUND', 404, -32075, true, 'The model does not exist on this route'),
  /**
   * The OpenAI Responses API: no response with that id was created by this caller (GET/DELETE /responses/{id},
   * .../cancel, `previous_response_id`); the same answer whether it does not exist or is another caller's.
   */
  RESPONSE_NOT_FOUND: def('TG_RESPONSE_NOT_FOUND', 404, -32001, true, 'No response with this id was created by this caller'),
  /** The prompt (messages, prompt, input) is over the route's maxPromptBytes. */
  PROMPT_TOO_LARGE: def('TG_PROMPT_TOO_LARGE', 400, -32602, true, 'The prompt exceeds the configured size'),
  /** KServe binary tensors: Inference-Header-Content-Length is not a number, over the cap, or its header is not JSON. */
  INVALID_TENSOR_HEADER: def('TG_INVALID_TENSOR_HEADER', 400, -32602, false, 'Inference-Header-Content-Length does not frame a JSON inference header'),
  /** KServe server readiness through the gateway: a backend of the route has no endpoint passing its health checks. */
  UPSTREAM_NOT_READY: def('TG_UPSTREAM_NOT_READY', 503, -32070, false, 'A backend of this route has no ready endpoint'),
  /** A pool's circuit breaker: too many requests in flight to one backend; the newcomer is refused, nobody is queued. */
  UPSTREAM_OVERLOADED: def('TG_UPSTREAM_OVERLOADED', 503, -32074, true, 'Upstream has too many requests in flight'),
});

export type ErrorName = keyof typeof Errors;

/** The ErrorInfo domain of the A2A specification's own errors (A2A v1.0, sections 5.4, 9.5 and 11.6). */
export const A2A_ERROR_DOMAIN = 'a2a-protocol.org';

/**
 * The A2A specification's ErrorInfo reason of each A2A error the gateway returns. A2A v1.0 callers (the A2A SDKs'
 * REST clients, the TCK) tell these errors apart by this reason (domain `a2a-protocol.org`), not by the gateway's
 * stable code, which rides along in the ErrorInfo's `metadata.code`.
 */
export const A2A_REASONS: ReadonlyMap<ErrorDef, string> = new Map([
  [Errors.A2A_TASK_NOT_FOUND, 'TASK_NOT_FOUND'],
  [Errors.A2A_PUSH_NOT_SUPPORTED, 'PUSH_NOTIFICATION_NOT_SUPPORTED'],
  [Errors.A2A_UNSUPPORTED_OPERATION, 'UNSUPPORTED_OPERATION'],
  [Errors.A2A_CONTENT_TYPE_NOT_SUPPORTED, 'CONTENT_TYPE_NOT_SUPPORTED'],
  [Errors.A2A_INVALID_AGENT_RESPONSE, 'INVALID_AGENT_RESPONSE'],
  [Errors.A2A_VERSION_NOT_SUPPORTED, 'VERSION_NOT_SUPPORTED'],
  [Errors.A2A_EXTENDED_CARD_NOT_CONFIGURED, 'EXTENDED_AGENT_CARD_NOT_CONFIGURED'],
]);

/** An error the gateway returns to a caller. Adapters render it in their protocol's shape. */
export class GatewayError extends Error {
  readonly def: ErrorDef;
  /** Extra machine-readable detail for the caller (never secrets, never another tenant's data). */
  readonly data: Readonly<Record<string, unknown>> | undefined;
  /** Extra HTTP headers to send with the error (e.g. WWW-Authenticate, Retry-After). */
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(
    errorDef: ErrorDef,
    message?: string,
    options?: { data?: Record<string, unknown>; headers?: Record<string, string>; cause?: unknown },
  ) {
    super(message ?? errorDef.message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.def = errorDef;
    this.data = options?.data;
    this.headers = options?.headers;
  }

  get code(): string {
    return this.def.code;
  }
}

/** Wraps anything thrown into a GatewayError; unknown errors become TG_INTERNAL without leaking their text. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError(Errors.INTERNAL, undefined, { cause: err });
}

/** The JSON-RPC error object for an error, with the stable code in `data.code`. */
export function jsonRpcErrorObject(err: GatewayError): { code: number; message: string; data: Record<string, unknown> } {
  return { code: err.def.rpc, message: err.message, data: { code: err.def.code, ...err.data } };
}
