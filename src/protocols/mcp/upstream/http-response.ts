/**
 * Reading an upstream's answer to one POSTed JSON-RPC request, shared by the session-era (http.ts) and the
 * 2026-07-28 (http-modern.ts) Streamable HTTP clients: the JSON body, or the matching event of an SSE stream.
 */
import type { Dispatcher } from 'undici';
import { Errors, GatewayError } from '../../../core/errors.ts';
import { readAll } from '../../../upstream/pools.ts';
import { peekId, peekKind, spliceId, type RpcId } from '../jsonrpc.ts';
import { readEvents, retryDelay, type StreamCursor } from './follow.ts';
import type { ReplySink } from './types.ts';

export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** What the relay needs of the upstream: its name (errors) and its health marks. */
export interface RelayingUpstream {
  readonly name: string;
  markOk(): void;
}

/**
 * Continues an SSE answer the upstream closed before the response (session era, 2025-11-25): a GET naming the last
 * event id received (`Last-Event-ID`), whose events continue the broken stream.
 */
export type ResumeStream = (lastEventId: string) => Promise<Dispatcher.ResponseData>;

/** Reconnects in a row that brought no new event before the relay gives up. */
const MAX_IDLE_RESUMES = 5;
/** Wait before a reconnect when the upstream gave no `retry` (the spec leaves it to the client). */
const DEFAULT_RETRY_MS = 1000;

/**
 * Relays one upstream answer to a request: the response (JSON body, or the matching event of an SSE stream, whose
 * other events are interim messages), or a failure. An SSE stream that ends before the response, after an event
 * with an id, is resumed with `resume` (after the upstream's `retry`), as often as reconnects keep bringing events.
 */
export async function relayResponse(up: RelayingUpstream, res: Dispatcher.ResponseData, id: RpcId, sink: ReplySink, resume?: ResumeStream): Promise<void> {
  const status = res.statusCode;
  const type = String(res.headers['content-type'] ?? '');
  if (status === 200 && type.startsWith('text/event-stream')) {
    up.markOk();
    let answered = false;
    const cursor: StreamCursor = { lastEventId: undefined, retryMs: undefined };
    const onData = (data: string): boolean => {
      if (peekKind(data) === 'response' && peekId(data) === id) {
        answered = true;
        sink.final(data);
        return true;
      }
      sink.interim(data);
      return false;
    };
    await readEvents(res, onData, cursor);
    for (let idle = 0; !answered && resume !== undefined && cursor.lastEventId !== undefined && idle < MAX_IDLE_RESUMES; idle++) {
      const from = cursor.lastEventId;
      await new Promise((r) => setTimeout(r, retryDelay(cursor.retryMs ?? DEFAULT_RETRY_MS)));
      const next = await resume(from);
      if (next.statusCode !== 200 || !String(next.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        await next.body.dump();
        sink.fail(new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${up.name} answered HTTP ${next.statusCode} to a stream resumption`, { data: { upstream: up.name, status: next.statusCode } }));
        return;
      }
      await readEvents(next, onData, cursor);
      if (cursor.lastEventId !== from) idle = -1; // progress: the count is of reconnects in a row that brought nothing
    }
    if (!answered) sink.fail(new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${up.name} closed the stream without a response`, { data: { upstream: up.name } }));
    return;
  }
  if (type.startsWith('application/json')) {
    const bytes = await readAll(res.body, MAX_RESPONSE_BYTES);
    if (status === 200) {
      up.markOk();
      sink.final(bytes);
      return;
    }
    // An HTTP error carrying a JSON-RPC error: give the client the upstream's error under its own id.
    const text = bytes.toString('utf8');
    if (peekKind(text) === 'response') {
      sink.final(spliceId(text, id));
      return;
    }
  } else await res.body.dump();
  sink.fail(new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${up.name} answered HTTP ${status}`, { data: { upstream: up.name, status } }));
}


/** The response to `id` from a JSON or SSE answer (used for initialize). */
export async function firstResponse(res: Dispatcher.ResponseData, id: RpcId, backend: string): Promise<string> {
  const type = String(res.headers['content-type'] ?? '');
  if (res.statusCode === 200 && type.startsWith('text/event-stream')) {
    let found: string | undefined;
    await readEvents(res, (data) => {
      if (peekKind(data) === 'response' && peekId(data) === id) found = data;
      return found !== undefined;
    });
    if (found !== undefined) return found;
  } else if (type.startsWith('application/json')) {
    const text = (await readAll(res.body, MAX_RESPONSE_BYTES)).toString('utf8');
    if (res.statusCode === 200 || peekKind(text) === 'response') return text;
  } else await res.body.dump();
  throw new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${backend} answered HTTP ${res.statusCode} to initialize`, {
    data: { upstream: backend, status: res.statusCode },
  });
}

