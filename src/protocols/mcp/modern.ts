/**
 * Wire details of the stateless revision (2026-07-28): the per-request `_meta` envelope, the request headers that
 * mirror the body (MCP-Protocol-Version, Mcp-Method, Mcp-Name, Mcp-Param-*) with their Base64 sentinel encoding,
 * and `x-mcp-header` declarations in tool input schemas.
 * Spec: modelcontextprotocol docs/specification/2026-07-28/basic/transports/streamable-http.mdx.
 */
export const MODERN_VERSION = '2026-07-28';
export const MODERN_VERSIONS: readonly string[] = [MODERN_VERSION];
export const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';
export const META_CLIENT_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';
export const META_CLIENT_INFO = 'io.modelcontextprotocol/clientInfo';
export const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';
export const META_SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';
export const META_LOG_LEVEL = 'io.modelcontextprotocol/logLevel';

/** Log levels, least severe first (RFC 5424 as MCP names them). */
export const LOG_LEVELS: readonly string[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/**
 * What a 2026-07-28 request's response stream must not carry of an upstream's log messages: all of them when its
 * `_meta` sets no logLevel (the server MUST NOT send notifications/message then), else those below that level.
 * Returns whether to drop a message; anything but notifications/message is kept.
 */
export function unrequestedLogs(meta: unknown): (message: string) => boolean {
  const level = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)[META_LOG_LEVEL] : undefined;
  const min = typeof level === 'string' ? LOG_LEVELS.indexOf(level) : -1;
  return (message) => {
    if (!message.includes('"notifications/message"')) return false;
    let parsed: { method?: unknown; params?: { level?: unknown } };
    try {
      parsed = JSON.parse(message) as typeof parsed;
    } catch {
      return false;
    }
    if (parsed.method !== 'notifications/message') return false;
    if (min < 0) return true;
    const at = typeof parsed.params?.level === 'string' ? LOG_LEVELS.indexOf(parsed.params.level) : -1;
    return at >= 0 && at < min;
  };
}

/** Whether a version string names the stateless era (2026-07-28 or later: dates compare as strings). */
export function isModernVersion(v: string): boolean {
  return v >= MODERN_VERSION && /^\d{4}-\d{2}-\d{2}$/.test(v);
}

/** Methods whose `Mcp-Name` header mirrors a body field. */
export const NAME_SOURCE: Readonly<Record<string, 'name' | 'uri'>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};

const SENTINEL_PREFIX = '=?base64?';
const SENTINEL_SUFFIX = '?=';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const PLAIN_SAFE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/** Decodes a header value that may carry the Base64 sentinel; undefined when the sentinel payload is invalid. */
export function decodeHeaderValue(value: string): string | undefined {
  if (!(value.startsWith(SENTINEL_PREFIX) && value.endsWith(SENTINEL_SUFFIX))) return value;
  const b64 = value.slice(SENTINEL_PREFIX.length, value.length - SENTINEL_SUFFIX.length);
  if (!BASE64.test(b64)) return undefined;
  const bytes = Buffer.from(b64, 'base64');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** Encodes a value for a mirrored header: plain when header-safe, otherwise the Base64 sentinel form. */
export function encodeHeaderValue(value: string): string {
  if (PLAIN_SAFE.test(value) && !(value.startsWith(SENTINEL_PREFIX) && value.endsWith(SENTINEL_SUFFIX))) return value;
  return `${SENTINEL_PREFIX}${Buffer.from(value, 'utf8').toString('base64')}${SENTINEL_SUFFIX}`;
}

/** One `x-mcp-header` declaration of a tool: header `Mcp-Param-<header>` mirrors the argument at `path`. */
export interface ParamHeader {
  readonly header: string;
  readonly path: readonly string[];
  readonly type: string | undefined;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The x-mcp-header declarations reachable through `properties` chains of an input schema (others are ignored). */
export function paramHeaders(inputSchema: unknown): ParamHeader[] {
  const out: ParamHeader[] = [];
  const visit = (schema: unknown, path: string[], depth: number): void => {
    if (depth > 8 || typeof schema !== 'object' || schema === null) return;
    const props = (schema as { properties?: unknown }).properties;
    if (typeof props !== 'object' || props === null) return;
    for (const [key, sub] of Object.entries(props as Record<string, unknown>)) {
      if (typeof sub !== 'object' || sub === null) continue;
      const h = (sub as Record<string, unknown>)['x-mcp-header'];
      const type = (sub as { type?: unknown }).type;
      if (typeof h === 'string' && TOKEN.test(h)) out.push({ header: h, path: [...path, key], type: typeof type === 'string' ? type : undefined });
      visit(sub, [...path, key], depth + 1);
    }
  };
  visit(inputSchema, [], 0);
  return out;
}

/** Keywords whose values are data, not subschemas: an `x-mcp-header` key inside them annotates nothing. */
const DATA_KEYWORDS: ReadonlySet<string> = new Set(['enum', 'const', 'default', 'examples', 'example']);
const HEADER_TYPES: ReadonlySet<string> = new Set(['string', 'integer', 'boolean']);

/**
 * Whether every `x-mcp-header` annotation of a tool's input schema keeps the rules a client MUST enforce by leaving
 * the tool out of tools/list (streamable-http.mdx, Schema Extension): a non-empty token, unique ignoring case, on a
 * string, integer or boolean parameter reached from the root through `properties` alone (never items, oneOf/anyOf/
 * allOf/not, if/then/else or $ref). A schema too deep to check is not trusted.
 */
export function validParamHeaders(inputSchema: unknown): boolean {
  const seen = new Set<string>();
  const visit = (node: unknown, reachable: boolean, depth: number): boolean => {
    if (typeof node !== 'object' || node === null) return true;
    if (depth > 64) return false;
    if (Array.isArray(node)) return node.every((n) => visit(n, false, depth + 1));
    const schema = node as Record<string, unknown>;
    if (Object.hasOwn(schema, 'x-mcp-header')) {
      const h = schema['x-mcp-header'];
      if (!reachable || typeof h !== 'string' || !TOKEN.test(h)) return false;
      if (typeof schema.type !== 'string' || !HEADER_TYPES.has(schema.type)) return false;
      const key = h.toLowerCase();
      if (seen.has(key)) return false;
      seen.add(key);
    }
    for (const [k, v] of Object.entries(schema)) {
      if (DATA_KEYWORDS.has(k) || typeof v !== 'object' || v === null) continue;
      if (k === 'properties' && !Array.isArray(v)) {
        for (const sub of Object.values(v as Record<string, unknown>)) if (!visit(sub, reachable, depth + 1)) return false;
      } else if (!visit(v, false, depth + 1)) return false;
    }
    return true;
  };
  // The root is the arguments object itself, not a parameter: an annotation there is misplaced.
  if (typeof inputSchema === 'object' && inputSchema !== null && Object.hasOwn(inputSchema, 'x-mcp-header')) return false;
  return visit(inputSchema, true, 0);
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function primitiveString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number' && Number.isFinite(v) && (!Number.isInteger(v) || Number.isSafeInteger(v))) return String(v);
  return undefined;
}

/** The Mcp-Param-* headers a client must send for these arguments. */
export function paramHeaderValues(decls: readonly ParamHeader[], args: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of decls) {
    const s = primitiveString(valueAt(args, d.path));
    if (s !== undefined) out[`mcp-param-${d.header.toLowerCase()}`] = encodeHeaderValue(s);
  }
  return out;
}

/** Checks Mcp-Param-* headers against the arguments; returns the mismatch description, or undefined when they agree. */
export function checkParamHeaders(decls: readonly ParamHeader[], args: unknown, headers: Readonly<Record<string, string | string[] | undefined>>): string | undefined {
  for (const d of decls) {
    const raw = valueAt(args, d.path);
    const body = primitiveString(raw);
    if (body === undefined) continue;
    const name = `mcp-param-${d.header.toLowerCase()}`;
    const h = headers[name];
    if (typeof h !== 'string') return `the body carries ${d.path.join('.')} but the Mcp-Param-${d.header} header is absent`;
    const decoded = decodeHeaderValue(h.trim());
    if (decoded === undefined) return `the Mcp-Param-${d.header} header carries an invalid Base64 value`;
    const equal = typeof raw === 'number' && /^-?\d+(\.\d+)?$/.test(decoded) ? Number(decoded) === raw : decoded === body;
    if (!equal) return `the Mcp-Param-${d.header} header does not match ${d.path.join('.')} in the body`;
  }
  return undefined;
}
