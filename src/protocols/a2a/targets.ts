/** The things an A2A call acts on, as policies, limits and audit records name them. */
import type { ResolvedBackend } from '../../config/load.ts';
import type { Target } from '../../core/call.ts';
import { HeaderPolicy } from '../../upstream/headers.ts';
import type { HttpUpstream } from '../../upstream/http-upstream.ts';
import type { A2aVersion } from './methods.ts';

/** Call scratch key: which error shape a call's errors take ('jsonrpc' | 'rest'). */
export const BINDING_KEY = 'a2a.binding';

/** Call scratch key: a 0.3 JSON-RPC streaming method, whose errors are SSE error events (wire/errors.ts). */
export const SSE_ERRORS_KEY = 'a2a.sseErrors';

/** Call scratch key: the A2A version of an HTTP+JSON request ('1.0' | '0.3'), once known (0.3 errors add `code`). */
export const REST_VERSION_KEY = 'a2a.restVersion';

/** An agent a request is for. */
export interface Agent {
  readonly name: string;
  readonly backend: ResolvedBackend;
  readonly upstream: HttpUpstream;
  /** Its path at the gateway (`<mount>/<agent>`). */
  readonly base: string;
}

/** A skill of an agent as policies and limits see it: `<agent>/<skill>` (`*`: a message that names no skill). */
export function skillTarget(agent: string, skill: string, known = true): Target {
  return { kind: 'skill', name: skill, server: known ? agent : undefined, local: skill };
}

/** The agent itself (its card, ListTasks, the extended card). */
export function agentTarget(agent: string): Target {
  return { kind: 'server', name: agent, server: agent, local: agent };
}


/** What crosses to the agent besides the body: never the caller's credentials. */
export const HEADERS = new HeaderPolicy({
  request: ['accept', 'a2a-extensions', 'x-a2a-extensions', 'x-request-id', 'traceparent', 'tracestate', 'accept-language'],
  response: ['content-type', 'a2a-extensions', 'x-a2a-extensions', 'x-request-id', 'cache-control'],
});

/** The header that names extensions in each A2A version (0.3 `X-A2A-Extensions`, 1.0 `A2A-Extensions`). */
export function extensionsHeader(version: A2aVersion): string {
  return version === '1.0' ? 'a2a-extensions' : 'x-a2a-extensions';
}
