/**
 * Attribute names used on Tollgate's spans: the OpenTelemetry GenAI / MCP semantic conventions (development status,
 * names as published in open-telemetry/semantic-conventions-genai, docs/gen-ai/mcp.md), the stable general ones, and
 * Tollgate's own `tollgate.*` for what no convention covers. Copied as constants rather than imported from the
 * semconv package's `incubating` entry point, as that package advises for unstable names.
 */
export const ATTR_MCP_METHOD_NAME = 'mcp.method.name';
export const ATTR_MCP_SESSION_ID = 'mcp.session.id';
export const ATTR_MCP_PROTOCOL_VERSION = 'mcp.protocol.version';
export const ATTR_MCP_RESOURCE_URI = 'mcp.resource.uri';
export const ATTR_JSONRPC_REQUEST_ID = 'jsonrpc.request.id';
export const ATTR_RPC_RESPONSE_STATUS_CODE = 'rpc.response.status_code';
export const ATTR_ERROR_TYPE = 'error.type';
export const ATTR_GEN_AI_OPERATION_NAME = 'gen_ai.operation.name';
export const ATTR_GEN_AI_TOOL_NAME = 'gen_ai.tool.name';
export const ATTR_GEN_AI_PROMPT_NAME = 'gen_ai.prompt.name';
export const ATTR_GEN_AI_REQUEST_MODEL = 'gen_ai.request.model';
export const ATTR_GEN_AI_PROVIDER_NAME = 'gen_ai.provider.name';
export const ATTR_GEN_AI_RESPONSE_MODEL = 'gen_ai.response.model';
export const ATTR_GEN_AI_RESPONSE_ID = 'gen_ai.response.id';
export const ATTR_GEN_AI_RESPONSE_FINISH_REASONS = 'gen_ai.response.finish_reasons';
export const ATTR_GEN_AI_USAGE_INPUT_TOKENS = 'gen_ai.usage.input_tokens';
export const ATTR_GEN_AI_USAGE_OUTPUT_TOKENS = 'gen_ai.usage.output_tokens';
export const ATTR_GEN_AI_AGENT_NAME = 'gen_ai.agent.name';
export const ATTR_NETWORK_TRANSPORT = 'network.transport';
export const ATTR_NETWORK_PROTOCOL_NAME = 'network.protocol.name';
export const ATTR_CLIENT_ADDRESS = 'client.address';
export const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
export const ATTR_HTTP_REQUEST_BODY_SIZE = 'http.request.body.size';
export const ATTR_HTTP_RESPONSE_BODY_SIZE = 'http.response.body.size';

/** The caller's identity: its SPIFFE ID (or issuer-qualified subject). */
export const ATTR_PRINCIPAL_ID = 'tollgate.principal.id';
export const ATTR_DECISION_ID = 'tollgate.decision.id';
export const ATTR_DECISION_ALLOW = 'tollgate.decision.allow';
export const ATTR_ROUTE = 'tollgate.route';
export const ATTR_UPSTREAM = 'tollgate.upstream';
export const ATTR_OUTCOME = 'tollgate.outcome';
export const ATTR_CALL_ID = 'tollgate.call.id';
export const ATTR_PROTOCOL = 'tollgate.protocol';
export const ATTR_GUARD = 'tollgate.guard';
/** A guard stage's duration (an event of the server span), milliseconds. */
export const ATTR_STAGE_DURATION_MS = 'tollgate.stage.duration_ms';
/** The limits guard's decision (admitted, rate_limited, budget_exceeded, unavailable, fail_open, local) and the limit that refused. */
export const ATTR_LIMIT_DECISION = 'tollgate.limit.decision';
export const ATTR_LIMIT_REFUSED = 'tollgate.limit.refused';
/** The call's cost in the configured currency, after the policy's cost multiplier. */
export const ATTR_USAGE_COST = 'tollgate.usage.cost';
