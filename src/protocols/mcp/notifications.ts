/**
 * Notifications an upstream sends a session-era client, on a request's stream or on the session's own (GET), as the
 * federated session's client must get them:
 * - `notifications/message` below the level the client set (logging/setLevel) is dropped, whatever the upstream
 *   sends: an upstream may not honour the level, or may have forgotten it (a restarted upstream session). On the
 *   federated view its `logger` names the upstream it came from (`<server>` or `<server>/<logger>`), logging.mdx's
 *   own field for who issued a message.
 * - `notifications/cancelled` of a request the upstream made of the client names it by the id the client saw
 *   (server-requests.ts), as cancellation.mdx requires ('requestId MUST correspond to the ID of a request previously
 *   issued in the same direction'); one naming no request the client was asked is dropped.
 * - `notifications/resources/updated` names the resource by its public URI on the federated view.
 * - a `list_changed` drops the session's cached list pages (list-cache.ts), on whichever stream it came.
 * Everything else (progress...) goes as it came.
 */
import { Errors, GatewayError } from '../../core/errors.ts';
import { listChanged } from './list-cache.ts';
import { LOG_LEVELS } from './modern.ts';
import { publicUri } from './names.ts';
import type { McpSession } from './session.ts';
import type { UpstreamSession } from './upstream/types.ts';

/** The level `logging/setLevel` asks for (its index in LOG_LEVELS), or the -32602 it is answered with. */
export function logLevelOf(params: Record<string, unknown>): number | GatewayError {
  const at = typeof params.level === 'string' ? LOG_LEVELS.indexOf(params.level) : -1;
  if (at < 0) return new GatewayError(Errors.INVALID_PARAMS, `Invalid params: level must be one of ${LOG_LEVELS.join(', ')}`);
  return at;
}

/** The message to write to the client for `message` from `up` (undefined: the client does not get it). */
export function relayNotification(session: McpSession, up: UpstreamSession, message: string): string | undefined {
  listChanged(session, message);
  const federated = session.scope === undefined;
  // Cheap checks first: most messages on a call's stream are progress notifications, relayed as they are.
  const log = message.includes('"notifications/message"') && (federated || session.logLevel !== undefined);
  const cancelled = !log && message.includes('"notifications/cancelled"');
  const updated = !log && !cancelled && federated && message.includes('"notifications/resources/updated"');
  if (!log && !cancelled && !updated) return message;
  let parsed: { method?: unknown; params?: Record<string, unknown> };
  try {
    parsed = JSON.parse(message) as typeof parsed;
  } catch {
    return message;
  }
  const params = parsed.params;
  if (typeof params !== 'object' || params === null) return message;
  switch (parsed.method) {
    case 'notifications/message': {
      const at = typeof params.level === 'string' ? LOG_LEVELS.indexOf(params.level) : -1;
      if (session.logLevel !== undefined && at >= 0 && at < session.logLevel) return undefined;
      if (!federated) return message;
      params.logger = typeof params.logger === 'string' && params.logger !== '' ? `${up.backend}/${params.logger}` : up.backend;
      break;
    }
    case 'notifications/cancelled': {
      const id = session.serverRequests.cancelled(up, params.requestId);
      if (id === undefined) return undefined;
      params.requestId = id;
      break;
    }
    case 'notifications/resources/updated':
      if (typeof params.uri !== 'string') return message;
      params.uri = publicUri(up.backend, params.uri);
      break;
    default:
      return message;
  }
  return JSON.stringify(parsed);
}
