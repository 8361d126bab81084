/**
 * Reading an upstream's answer to one POSTed JSON-RPC request, shared by the session-era (http.ts) and the
 * 2026-07-28 (http-modern.ts) Streamable HTTP clients: the JSON body, or the matching event of an SSE stream.
 */
import type { Dispatcher } from 'undici';
import { Errors, GatewayError } from '../../../core/errors.ts';
import { readAll } from '../../../upstream/pools.ts';
import { peekId, peekKind, spliceId, type RpcId } from '../jsonrpc.ts';
import { readEvents } from './follow.ts';
import type { ReplySink } from './types.ts';

export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** What the relay needs of the upstream: its name (errors) and its health marks. */
export interface RelayingUpstream {
  readonly name: string;
  markOk(): void;
}

/**
 * Relays one upstream answer to a request: the response (JSON body, or the matching event of an SSE stream, whose
 * other events are interim messages), or a failure.
 */
export async function relayResponse(up: RelayingUpstream, res: Dispatcher.ResponseData, id: RpcId, sink: ReplySink): Promise<void> {
  const status = res.statusCode;
  const type = String(res.headers['content-type'] ?? '');
  if (status === 200 && type.startsWith('text/event-stream')) {
    up.markOk();
    await readEvents(res, (data) => {
      if (peekKind(data) === 'response' && peekId(data) === id) {
        sink.final(data);
        return true;
      }
      sink.interim(data);
      return false;
    });
    sink.fail(new GatewayError(Errors.UPSTREAM_BAD_RESPONSE, `Upstream ${up.name} closed the stream without a response`, { data: { upstream: up.name } }));
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

