/**
 * One A2A call over either binding: read and validate the request (content type, size, JSON, JSON-RPC envelope or
 * REST path, version), build the Call (operation, target, policy arguments), admit it, check that a task it names
 * is the caller's and that a push URL it carries is allowed, forward it to the agent's interface for that binding
 * and version, and relay the answer (binding new tasks to the caller, filtering task lists, streams event by event).
 */
import type { IncomingMessage } from 'node:http';
import type { Call, Target } from '../../core/call.ts';
import { Errors, GatewayError, toGatewayError } from '../../core/errors.ts';
import type { Exchange } from '../../gateway/adapter.ts';
import { mediaType, readBody } from '../../server/io.ts';
import { refuseUrl } from '../../upstream/egress.ts';
import { forward, type UpstreamResponse } from '../../upstream/forwarder.ts';
import { parseMessage, RpcParseError } from '../../wire/jsonrpc.ts';
import type { A2aAdapter } from './adapter.ts';
import { agentTarget, BINDING_KEY, HEADERS, REST_VERSION_KEY, skillTarget, SSE_ERRORS_KEY, type Agent } from './targets.ts';
import { translate, translationTarget } from './translate.ts';
import { skillIds } from './card.ts';
import { capabilityRefusal, EXTENDED_CARD, GET_PUSH, LIST_PUSH, LIST_TASKS, SUBSCRIBE, messageOf, namedSkill, partKinds, pushHoldersOf, pushUrlOf, pushUrlsOf, restOperation, rpcOperation, taskIdOf, taskIdsNamed, type A2aVersion, type Operation } from './methods.ts';
import { checkParams } from './params.ts';
import { filterTasks, listedTasks, taskIdIn } from './relay.ts';
import { ClientFeed, relayStream, resume } from './streams.ts';
import type { Keep } from './tasks.ts';

/** A whole JSON answer the gateway reads (to bind tasks or filter lists) may be at most this large. */
const READ_LIMIT = 16 * 1024 * 1024;

type Params = Record<string, unknown>;

interface Parsed {
  readonly op: Operation;
  readonly version: A2aVersion;
  readonly params: Params;
  /** The body to forward (the client's bytes unless the gateway had to change them). */
  body: Buffer | string | undefined;
  readonly rpcId?: string | number | undefined;
  /** REST: the path under the agent's REST base, with its query. */
  readonly restPath?: string | undefined;
  readonly taskId?: string | undefined;
}

function isJsonType(type: string | undefined): boolean {
  const t = mediaType(type);
  return t === 'application/json' || t === 'application/a2a+json';
}

export class A2aCalls {
  private readonly a: A2aAdapter;

  constructor(adapter: A2aAdapter) {
    this.a = adapter;
  }

  /** POST <mount>/<agent>: the JSON-RPC binding. */
  async rpc(x: Exchange, pre: Call, agent: Agent): Promise<void> {
    const { req, res, match } = x;
    let parsed: Parsed;
    try {
      if (!isJsonType(req.headers['content-type'])) {
        throw new GatewayError(Errors.A2A_CONTENT_TYPE_NOT_SUPPORTED, `Content-Type ${req.headers['content-type'] ?? '(none)'} is not supported: send application/json`);
      }
      const body = await readBody(req, match.rule.maxBodyBytes);
      const { message } = parseMessage(body);
      if (message.kind !== 'request') throw new GatewayError(Errors.INVALID_REQUEST, 'Invalid Request: an A2A JSON-RPC message is a request with an id');
      const m = message.msg;
      pre.rpcId = m.id;
      const found = rpcOperation(m.method);
      if (found === undefined) throw new GatewayError(Errors.METHOD_NOT_FOUND, `Method not found: ${m.method}`);
      const header = this.a.requestVersion(req);
      // A 1.0 client that names its version but spells a 0.3 method (or the reverse) called a method its version lacks.
      if (header !== undefined && header !== found.version) throw new GatewayError(Errors.METHOD_NOT_FOUND, `Method not found in A2A ${header}: ${m.method}`);
      if (found.op.streams && found.version === '0.3') pre.scratch.set(SSE_ERRORS_KEY, true);
      parsed = { op: found.op, version: found.version, params: (m.params ?? {}) as Params, body, rpcId: m.id };
      checkParams(parsed.op, parsed.params);
    } catch (err) {
      if (err instanceof RpcParseError) {
        pre.rpcId = err.id ?? undefined;
        return this.a.reject(pre, req, res, err.error);
      }
      return this.a.reject(pre, req, res, toGatewayError(err));
    }
    await this.run(x, agent, parsed, 'jsonrpc');
  }

  /** <mount>/<agent>/<path>: the HTTP+JSON (REST) binding. */
  async rest(x: Exchange, pre: Call, agent: Agent, sub: string): Promise<void> {
    const { req, res, match } = x;
    const method = req.method ?? 'GET';
    const target = restOperation(method, sub);
    let parsed: Parsed;
    // Errors of a 0.3 REST request carry the 0.3 body's code too (wire/errors.ts): known from its path at first.
    if (sub.startsWith('/v1/')) pre.scratch.set(REST_VERSION_KEY, '0.3');
    try {
      if (target === undefined) throw new GatewayError(Errors.NOT_FOUND, `No A2A endpoint ${method} ${agent.base}${sub}`);
      const header = this.a.requestVersion(req);
      const version: A2aVersion = header ?? (target.legacyPath ? '0.3' : this.a.settings(match.rule).defaultVersion);
      pre.scratch.set(REST_VERSION_KEY, version);
      let params: Params = {};
      let body: Buffer | undefined;
      if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
        const length = req.headers['content-length'];
        const hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
        if (hasBody && !isJsonType(req.headers['content-type'])) {
          throw new GatewayError(Errors.A2A_CONTENT_TYPE_NOT_SUPPORTED, `Content-Type ${req.headers['content-type'] ?? '(none)'} is not supported: send application/a2a+json or application/json`);
        }
        body = await readBody(req, match.rule.maxBodyBytes);
        if (body.length > 0) {
          let value: unknown;
          try {
            value = JSON.parse(body.toString('utf8'));
          } catch {
            throw new GatewayError(Errors.PARSE_ERROR);
          }
          if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new GatewayError(Errors.INVALID_REQUEST, 'Invalid request: the body must be a JSON object');
          params = value as Params;
        }
      } else if (!req.complete) req.resume();
      const query = (req.url ?? '').indexOf('?');
      checkParams(target.op, params, query < 0 ? undefined : new URLSearchParams((req.url ?? '').slice(query + 1)));
      parsed = { op: target.op, version, params, body, restPath: target.path + (query < 0 ? '' : (req.url ?? '').slice(query)), taskId: target.taskId };
    } catch (err) {
      return this.a.reject(pre, req, res, toGatewayError(err));
    }
    await this.run(x, agent, parsed, 'rest');
  }

  /** The Call of a parsed request: admitted, checked, forwarded, relayed, settled. */
  private async run(x: Exchange, agent: Agent, p: Parsed, binding: 'jsonrpc' | 'rest'): Promise<void> {
    const { req, res, match, state } = x;
    const rule = match.rule;
    const settings = this.a.settings(rule);
    const op = p.op;
    const taskId = p.taskId ?? taskIdOf(op, p.params);
    // The card says which skills exist (and where the agent serves each binding); fetched before the Call so a
    // skill name the agent does not have never keys a limit counter.
    let card: Record<string, unknown> | undefined;
    let cardError: unknown;
    let where: Awaited<ReturnType<A2aAdapter['interfaces']>>['interfaces'] | undefined;
    try {
      const got = await this.a.interfaces(agent, rule);
      card = got.card;
      where = got.interfaces;
    } catch (err) {
      cardError = err;
    }
    let target: Target;
    let args: Record<string, unknown> | undefined;
    if (op.sends) {
      const skill = namedSkill(p.params) ?? settings.defaultSkills[agent.name];
      // The route's default skill is the operator's word (known even while the agent's card cannot be fetched).
      const known = skill === undefined || skill === settings.defaultSkills[agent.name] || (card !== undefined && skillIds(card).includes(skill));
      target = skillTarget(agent.name, skill ?? '*', known);
      const message = messageOf(p.params) ?? {};
      args = {
        skill: skill ?? null,
        part_kinds: partKinds(p.params),
        metadata: message.metadata ?? {},
        context_id: typeof message.contextId === 'string' ? message.contextId : null,
        task_id: taskId ?? null,
        callee: agent.name,
      };
      const push = pushUrlOf(op, p.params);
      if (typeof push === 'string') args.push_host = hostOf(push);
    } else if (taskId !== undefined) {
      target = { kind: 'task', name: taskId, server: agent.name, local: taskId };
      args = { callee: agent.name };
    } else {
      target = agentTarget(agent.name);
      args = { callee: agent.name };
    }
    const call = this.a.ctx.calls.start({ protocol: 'a2a', operation: op.name, rule, req, target, upstream: agent.name, args, rpcId: p.rpcId });
    call.scratch.set(BINDING_KEY, binding);
    if (binding === 'jsonrpc' && op.streams && p.version === '0.3') call.scratch.set(SSE_ERRORS_KEY, true);
    if (binding === 'rest') call.scratch.set(REST_VERSION_KEY, p.version);
    await this.a.ctx.calls.run(call, { res, req, call }, state, async () => {
      if (where === undefined) throw toGatewayError(cardError);
      const caller = call.principal?.id ?? '';
      const off = capabilityRefusal(op, card ?? {}, settings.push.allowHosts.length > 0, p.version);
      if (off !== undefined) throw off;
      // A task the caller did not create does not exist for it (checked after the policy: no existence leak).
      if (taskId !== undefined) await this.a.owners.check(agent.name, taskId, caller);
      // Every task the request names in any spelling the agent's SDK decodes (task_id, referenceTaskIds, `request`).
      for (const id of taskIdsNamed(op, p.params)) if (id !== taskId) await this.a.owners.check(agent.name, id, caller);
      // A message that may create a task: refused now (before a relay hook is registered or anything is forwarded)
      // if its task could not be bound to the caller.
      if (op.sends) this.a.owners.assertRoom(caller);
      const pushes = pushUrlsOf(op, p.params);
      for (const push of pushes) await this.guardPush(push, settings.push);
      // The agent is told the gateway's relay URL, never the caller's webhook (push.ts).
      if (pushes.length > 0 && settings.push.deliver === 'gateway') {
        for (const holder of pushHoldersOf(op, p.params)) {
          if (typeof holder.url === 'string') holder.url = await this.a.push.register(`${this.a.publicBase(req, state)}${agent.base}`, agent.name, holder.url, call.principal, settings.taskTtlMs, p.version);
        }
        p.body = reserialized(p, binding);
      }
      // A client resuming a task's stream with Last-Event-ID: the events it missed first (resume.ts).
      const lastEventId = op === SUBSCRIBE && taskId !== undefined ? req.headers['last-event-id'] : undefined;
      let resumed: ClientFeed | undefined;
      if (typeof lastEventId === 'string' && taskId !== undefined) {
        const r = await resume(this.a.streams, { res, agent: agent.name, taskId, caller, version: p.version, binding, lastEventId, rpcId: p.rpcId, keepAliveMs: state.snapshot.gateway.http.sseKeepAliveMs });
        if (r === 'done') return;
        resumed = r;
      }
      if (settings.traceMetadata && op.sends) p.body = withTraceMetadata(p, binding, this.a.ctx.calls.propagate(call) ?? traceHeaders(req));
      // An agent that serves no 1.0 interface has no ListTasks: the gateway indexes its tasks per owner (list-own.ts).
      const keep: Keep = { ttlMs: settings.taskTtlMs, listed: where.jsonrpc['1.0'] === undefined && where.rest['1.0'] === undefined };
      const paths = where[binding];
      const base = paths[p.version];
      let to = base === undefined ? translationTarget(where, binding, p.version) : undefined;
      // Push configs over 0.3 REST are where the 0.3 servers part: no create body all of them read (the JS SDK's
      // router: the proto's `config`; a2a-python 0.3: the whole request), no list in a2a-python 0.3. Their 0.3
      // JSON-RPC tasks/pushNotificationConfig/* methods agree: a translation takes those when the agent has them.
      const rpc03 = where.jsonrpc['0.3'];
      if (op.name.includes('PushNotificationConfig') && to?.binding === 'rest' && to.version === '0.3' && rpc03 !== undefined) to = { binding: 'jsonrpc', version: '0.3', path: rpc03 };
      if (to !== undefined) {
        // The agent serves the other version only: translated (translate.ts), over its binding of that version.
        const body = binding === 'jsonrpc' && p.body !== undefined ? p.body.toString() : '';
        const rest = binding === 'rest' ? { path: p.restPath ?? '/', params: p.body !== undefined && p.body.length > 0 ? p.params : undefined } : undefined;
        return translate(this.a, { x, agent, call, binding, from: p.version, body, rest, to, resumed, keep, card: card ?? {}, serve: async (c) => this.a.served(x, agent, c, await this.a.visibleSkills(call, state, agent, c), p.version) });
      }
      if (base === undefined) {
        throw new GatewayError(Errors.A2A_VERSION_NOT_SUPPORTED, `Agent ${agent.name} does not serve A2A ${p.version} over ${binding === 'jsonrpc' ? 'JSON-RPC' : 'HTTP+JSON'}`, {
          data: { supported: Object.keys(paths) },
        });
      }
      const answer = await forward(agent.upstream, {
        method: req.method ?? 'POST',
        path: binding === 'jsonrpc' ? base : `${base}${p.restPath ?? ''}`,
        headers: req.headers,
        policy: HEADERS,
        set: {
          ...(p.body !== undefined && p.body.length > 0 ? { 'content-type': binding === 'jsonrpc' ? 'application/json' : (req.headers['content-type'] ?? 'application/json') } : {}),
          'a2a-version': p.version,
          ...this.a.ctx.calls.propagate(call),
        },
        body: p.body !== undefined && p.body.length > 0 ? p.body : undefined,
        // A stream is the gateway's to read (resume.ts): the client going away does not end it at once.
        client: op.streams ? undefined : res,
        // Reads have no side effect: safe to send again before any byte reached the client.
        idempotent: !op.sends && op.name !== 'CancelTask' && !op.push && op.name !== 'DeleteTaskPushNotificationConfig',
        timeouts: op.streams ? { idleMs: 0 } : undefined,
        call,
      });
      await this.relay(call, x, agent, op, answer, keep, { version: p.version, binding, resumed });
    });
  }

  private async guardPush(url: string | null, policy: { allowHosts: readonly string[]; allowHttp: boolean }): Promise<void> {
    if (policy.allowHosts.length === 0) {
      throw new GatewayError(Errors.A2A_PUSH_NOT_SUPPORTED, 'Push notifications are not supported on this route (no push.allowHosts configured)');
    }
    const why = url === null ? 'not a string' : await refuseUrl(url, policy, this.a.resolver);
    if (why !== undefined) throw new GatewayError(Errors.A2A_PUSH_URL_REFUSED, `Push-notification URL refused: ${why}`);
  }

  private async relay(call: Call, x: Exchange, agent: Agent, op: Operation, answer: UpstreamResponse, keep: Keep, stream: { version: A2aVersion; binding: 'jsonrpc' | 'rest'; resumed: ClientFeed | undefined }): Promise<void> {
    const { version, binding, resumed } = stream;
    const { res, state } = x;
    const caller = call.principal?.id ?? '';
    const type = answer.headers['content-type'];
    if (answer.status >= 500) call.outcome = 'upstream_error';
    if (typeof type === 'string' && type.startsWith('text/event-stream')) {
      // Task ids seen in the stream are bound at once in this replica (before the event is passed on), and in the
      // shared store as soon as it answers. The stream is buffered per task for clients that resume (streams.ts).
      const pending: Promise<void>[] = [];
      const bound = new Set<string>();
      try {
        await relayStream({
          answer,
          feed: resumed ?? new ClientFeed(res, answer.forwardedHeaders(), state.snapshot.gateway.http.sseKeepAliveMs),
          onTask: op.sends
            ? (id) => {
                if (bound.has(id)) return;
                bound.add(id);
                this.a.owners.bindLocal(agent.name, id, caller, keep);
                // In the store after this event is written (a microtask): its socket write is not on the event's path.
                pending.push(Promise.resolve().then(() => this.stored(agent.name, id, caller, keep)));
              }
            : undefined,
          open: (id, stop) => this.a.streams.open(agent.name, id, caller, version, binding, stop),
        });
      } finally {
        await Promise.all(pending);
      }
      return;
    }
    resumed?.end();
    if ((op.push || op === GET_PUSH || op === LIST_PUSH) && !op.sends && answer.status >= 200 && answer.status < 300) {
      // Push configs name the gateway's relay URLs: the caller sees its own URLs again.
      const text = await this.a.push.restore(agent.name, (await answer.read(READ_LIMIT)).toString('utf8'), caller);
      const headers = answer.forwardedHeaders();
      headers['content-length'] = Buffer.byteLength(text);
      res.writeHead(answer.status, headers);
      res.end(text);
      return;
    }
    const reads = op.sends || op === LIST_TASKS || op === EXTENDED_CARD;
    if (!reads || answer.status < 200 || answer.status >= 300) {
      await answer.pipeTo(res);
      return;
    }
    const raw = await answer.read(READ_LIMIT);
    let payload: unknown;
    try {
      payload = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new GatewayError(Errors.A2A_INVALID_AGENT_RESPONSE, `Agent ${agent.name} answered with invalid JSON`, { data: { upstream: agent.name } });
    }
    let out: Buffer | string = raw;
    let created: string | undefined;
    if (op.sends) {
      // Bound in this replica before the answer goes out (the caller cannot use the id here before it is bound), and
      // in the shared store once it went out: neither the store's round trip nor its socket write is on the caller's
      // latency. Until it lands, another replica answers TaskNotFound for the task (fails closed, never open).
      created = taskIdIn(payload);
      if (created !== undefined) this.a.owners.bindLocal(agent.name, created, caller, keep);
    } else if (op === LIST_TASKS) {
      const listed = listedTasks(payload);
      if (listed !== undefined) {
        const ids = listed.tasks.map((t) => String((t as { id?: unknown } | null)?.id ?? ''));
        filterTasks(payload, await this.a.owners.mine(agent.name, ids, caller));
        out = JSON.stringify(payload);
      }
    } else {
      // The extended card is a card: rewritten like the public one.
      const top = payload as Record<string, unknown>;
      const isRpc = typeof top === 'object' && top !== null && 'jsonrpc' in top;
      const card = (isRpc ? top.result : top) as Record<string, unknown> | undefined;
      if (card !== undefined && typeof card === 'object' && card !== null && typeof card.name === 'string') {
        const skills = await this.a.visibleSkills(call, state, agent, card);
        const served = await this.a.served(x, agent, card, skills);
        out = JSON.stringify(isRpc ? { ...top, result: served } : served);
      }
    }
    const headers = answer.forwardedHeaders();
    headers['content-length'] = Buffer.byteLength(out);
    res.writeHead(answer.status, headers);
    res.end(out);
    if (created !== undefined) await this.stored(agent.name, created, caller, keep);
  }

  /** Binds a task in the shared store (bound in this replica already); a store that failed is logged, not thrown. */
  private stored(agent: string, taskId: string, caller: string, keep: Keep): Promise<void> {
    return this.a.owners.bind(agent, taskId, caller, keep).catch((err: unknown) => this.a.ctx.log.warn({ err: (err as Error).message }, 'A2A task binding not stored'));
  }
}

function hostOf(url: string): string | null {
  try {
    return new URL(url).hostname;
  } catch {
    return null;
  }
}

function traceHeaders(req: IncomingMessage): Record<string, string> | undefined {
  const tp = req.headers.traceparent;
  if (typeof tp !== 'string') return undefined;
  const ts = req.headers.tracestate;
  return typeof ts === 'string' ? { traceparent: tp, tracestate: ts } : { traceparent: tp };
}

/** The request's body again from its (changed) parameters. */
function reserialized(p: Parsed, binding: 'jsonrpc' | 'rest'): string {
  if (binding === 'rest' || p.body === undefined) return JSON.stringify(p.params);
  const envelope = JSON.parse(p.body.toString()) as Params;
  envelope.params = p.params;
  return JSON.stringify(envelope);
}

/** The message with the call's trace context in its metadata (`traceparent`, `tracestate`), re-serialised. */
function withTraceMetadata(p: Parsed, binding: 'jsonrpc' | 'rest', trace: Record<string, string> | undefined): Buffer | string | undefined {
  if (trace === undefined || p.body === undefined) return p.body;
  // `message`, or the 0.3 REST proto's `request`.
  const m = messageOf(p.params);
  if (m === undefined) return p.body;
  m.metadata = { ...(typeof m.metadata === 'object' && m.metadata !== null ? (m.metadata as Params) : {}), ...trace };
  return reserialized(p, binding);
}

