/**
 * What a client set on its upstream session that the upstream keeps per session: the log level (logging/setLevel)
 * and resource subscriptions (resources/subscribe). When the upstream forgets the session (it restarted, or expired
 * it) and the gateway re-creates it, the new session is set the same way: the client, which knows nothing of the
 * new upstream session, still has its level and its subscriptions.
 */
import type { RpcRequest } from '../jsonrpc.ts';

/** Bound on remembered subscriptions per upstream session (each was an admitted call; beyond it none is added). */
const MAX_SUBSCRIPTIONS = 1024;

export class UpstreamSessionState {
  private logLevel: Record<string, unknown> | undefined;
  private readonly subscriptions = new Set<string>();

  /** Notes what a request sets (called for every request sent, gateway-made or the client's). */
  note(method: string, params: Record<string, unknown> | undefined): void {
    if (method === 'logging/setLevel') this.logLevel = params;
    const uri = params?.uri;
    if (typeof uri !== 'string') return;
    if (method === 'resources/subscribe' && this.subscriptions.size < MAX_SUBSCRIPTIONS) this.subscriptions.add(uri);
    else if (method === 'resources/unsubscribe') this.subscriptions.delete(uri);
  }

  /** The requests that set a new upstream session as this one was set, each under an id of `nextId`. */
  replay(nextId: () => string): RpcRequest[] {
    const out: RpcRequest[] = [];
    if (this.logLevel !== undefined) out.push({ jsonrpc: '2.0', id: nextId(), method: 'logging/setLevel', params: this.logLevel });
    for (const uri of this.subscriptions) out.push({ jsonrpc: '2.0', id: nextId(), method: 'resources/subscribe', params: { uri } });
    return out;
  }
}
