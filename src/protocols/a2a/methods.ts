/**
 * A2A operations as the gateway sees them, whatever the binding (JSON-RPC or HTTP+JSON) and version (1.0 or 0.3):
 * one table from v1.0 method names, v0.3 method names and REST paths to an `Operation` that says what the call acts
 * on (a skill through a message, a task, a push config, the extended card), whether it streams, and where the task
 * id is in its parameters. Spec: a2aproject/A2A docs/specification.md (v1.0 sections 9 and 11; v0.3 sections 7, 11).
 */
import { Errors, GatewayError } from '../../core/errors.ts';

export type A2aVersion = '1.0' | '0.3';

export interface Operation {
  /** The v1.0 method name: the Call's operation, what policies and limits name. */
  readonly name: string;
  /** The v0.3 JSON-RPC method name ('' when 0.3 has none). */
  readonly legacy: string;
  /** Sends a message (policy sees its skill; the answer may create a task bound to the caller). */
  readonly sends: boolean;
  /** Answers with an SSE stream. */
  readonly streams: boolean;
  /** Addresses an existing task (ownership checked before anything is forwarded). */
  readonly addressesTask: boolean;
  /** Carries a push-notification URL (guarded against SSRF). */
  readonly push: boolean;
}

function op(name: string, legacy: string, o: Partial<Omit<Operation, 'name' | 'legacy'>> = {}): Operation {
  return Object.freeze({ name, legacy, sends: false, streams: false, addressesTask: false, push: false, ...o });
}

export const SEND = op('SendMessage', 'message/send', { sends: true, push: true });
export const STREAM = op('SendStreamingMessage', 'message/stream', { sends: true, streams: true, push: true });
export const GET_TASK = op('GetTask', 'tasks/get', { addressesTask: true });
export const LIST_TASKS = op('ListTasks', 'tasks/list');
export const CANCEL_TASK = op('CancelTask', 'tasks/cancel', { addressesTask: true });
export const SUBSCRIBE = op('SubscribeToTask', 'tasks/resubscribe', { addressesTask: true, streams: true });
export const CREATE_PUSH = op('CreateTaskPushNotificationConfig', 'tasks/pushNotificationConfig/set', { addressesTask: true, push: true });
export const GET_PUSH = op('GetTaskPushNotificationConfig', 'tasks/pushNotificationConfig/get', { addressesTask: true });
export const LIST_PUSH = op('ListTaskPushNotificationConfigs', 'tasks/pushNotificationConfig/list', { addressesTask: true });
export const DELETE_PUSH = op('DeleteTaskPushNotificationConfig', 'tasks/pushNotificationConfig/delete', { addressesTask: true });
export const EXTENDED_CARD = op('GetExtendedAgentCard', 'agent/getAuthenticatedExtendedCard');

const ALL = [SEND, STREAM, GET_TASK, LIST_TASKS, CANCEL_TASK, SUBSCRIBE, CREATE_PUSH, GET_PUSH, LIST_PUSH, DELETE_PUSH, EXTENDED_CARD];

const PUSH_CONFIGS: ReadonlySet<Operation> = new Set([CREATE_PUSH, GET_PUSH, LIST_PUSH, DELETE_PUSH]);

const V1 = new Map<string, Operation>(ALL.map((o) => [o.name, o]));
// The SDK's JSON-RPC server also accepts this singular spelling of the list method.
V1.set('ListTaskPushNotificationConfig', LIST_PUSH);
const V03 = new Map<string, Operation>(ALL.filter((o) => o.legacy !== '').map((o) => [o.legacy, o]));

/**
 * What the card the gateway serves turns off is refused as the agent's SDK would (A2A v1.0, 3.3.4), before any task
 * is looked up: push-config methods with push notifications off (the route allows no push URL, or the agent has
 * none), SubscribeToTask and SendStreamingMessage with streaming off. The answer is the same for every task id.
 * The extended card of an agent that offers none (1.0 `capabilities.extendedAgentCard`, 0.3
 * `supportsAuthenticatedExtendedCard`): 1.0 UnsupportedOperation (v1.0 3.1.11), 0.3 -32007
 * AuthenticatedExtendedCardNotConfigured (v0.3.0 7.10, as a2a-python and a2a-java 0.3 answer; the JS SDK's 0.3
 * layer answers 1.0's -32004).
 */
export function capabilityRefusal(o: Operation, card: Record<string, unknown>, routeAllowsPush: boolean, version: A2aVersion): GatewayError | undefined {
  const caps = typeof card.capabilities === 'object' && card.capabilities !== null ? (card.capabilities as Record<string, unknown>) : {};
  if (o === EXTENDED_CARD && caps.extendedAgentCard !== true && card.supportsAuthenticatedExtendedCard !== true) {
    return version === '0.3'
      ? new GatewayError(Errors.A2A_EXTENDED_CARD_NOT_CONFIGURED, 'The agent has no authenticated extended card (supportsAuthenticatedExtendedCard is false)')
      : new GatewayError(Errors.A2A_UNSUPPORTED_OPERATION, 'This operation is not supported: the agent has no extended agent card (GetExtendedAgentCard)');
  }
  if (PUSH_CONFIGS.has(o) && (!routeAllowsPush || caps.pushNotifications !== true)) {
    return new GatewayError(Errors.A2A_PUSH_NOT_SUPPORTED, `Push notifications are not supported by this agent at the gateway (${o.name})`);
  }
  if (o.streams && caps.streaming !== true) return new GatewayError(Errors.A2A_UNSUPPORTED_OPERATION, `This operation is not supported: the agent does not stream (${o.name})`);
  return undefined;
}

/** The operation of a JSON-RPC method name, and the version its spelling belongs to. */
export function rpcOperation(method: string): { op: Operation; version: A2aVersion } | undefined {
  const v1 = V1.get(method);
  if (v1 !== undefined) return { op: v1, version: '1.0' };
  const v03 = V03.get(method);
  if (v03 !== undefined) return { op: v03, version: '0.3' };
  return undefined;
}

/**
 * The `A2A-Version` header: the version it names, undefined when absent, or 'unsupported'. Only Major.Minor counts
 * (A2A v1.0, 3.6: patch numbers must not affect negotiation): `1`, `1.0`, `1.0.3` are 1.0; `0.3`, `0.3.1` are 0.3.
 */
export function headerVersion(value: string | string[] | undefined): A2aVersion | undefined | 'unsupported' {
  if (value === undefined) return undefined;
  const v = (Array.isArray(value) ? value[0] : value)?.trim() ?? '';
  if (v === '') return undefined;
  const m = /^(\d{1,4})(?:\.(\d{1,4})(?:\.\d{1,9})?)?$/.exec(v);
  if (m === null) return 'unsupported';
  const majorMinor = `${Number(m[1])}.${Number(m[2] ?? '0')}`;
  return majorMinor === '1.0' ? '1.0' : majorMinor === '0.3' ? '0.3' : 'unsupported';
}

/** A REST request resolved to an operation: the task and config ids its path names. */
export interface RestTarget {
  readonly op: Operation;
  readonly taskId?: string | undefined;
  /** The path under the agent's REST base, as the upstream gets it (the client's own spelling, /v1 included). */
  readonly path: string;
  /** The path carried the 0.3 `/v1` prefix. */
  readonly legacyPath: boolean;
}

const TENANT = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,127}$/;

function decode(s: string): string | undefined {
  try {
    const d = decodeURIComponent(s);
    return d === '' || d.includes('/') ? undefined : d;
  } catch {
    return undefined;
  }
}

/**
 * Resolves `<method> <path>` of the HTTP+JSON binding (path under the agent, query excluded). Undefined: no such
 * endpoint (a malformed REST path); the caller answers 404 in the REST error shape.
 */
export function restOperation(method: string, rawPath: string): RestTarget | undefined {
  const direct = restPathOperation(method, rawPath);
  if (direct !== undefined || rawPath.startsWith('/v1/')) return direct;
  // A2A v1.0 11.3: a path may carry a tenant before the resource (`/{tenant}/tasks/{id}`); forwarded as it came, so
  // the tenant is an unreserved-character segment (never `.` or `..`: the agent's server must not resolve it away).
  const slash = rawPath.indexOf('/', 1);
  if (slash < 0 || !TENANT.test(rawPath.slice(1, slash))) return undefined;
  const inner = restPathOperation(method, rawPath.slice(slash));
  return inner === undefined || inner.legacyPath ? undefined : { ...inner, path: rawPath };
}

function restPathOperation(method: string, rawPath: string): RestTarget | undefined {
  let path = rawPath;
  let legacyPath = false;
  if (path.startsWith('/v1/')) {
    path = path.slice(3);
    legacyPath = true;
  }
  const at = (o: Operation, taskId?: string): RestTarget | undefined => (taskId === undefined && o.addressesTask ? undefined : { op: o, taskId, path: rawPath, legacyPath });
  if (path === '/message:send') return method === 'POST' ? at(SEND) : undefined;
  if (path === '/message:stream') return method === 'POST' ? at(STREAM) : undefined;
  if (path === '/extendedAgentCard' || (legacyPath && path === '/card')) return method === 'GET' ? at(EXTENDED_CARD) : undefined;
  if (path === '/tasks') return method === 'GET' ? at(LIST_TASKS) : undefined;
  if (!path.startsWith('/tasks/')) return undefined;
  const rest = path.slice('/tasks/'.length);
  const slash = rest.indexOf('/');
  const head = slash < 0 ? rest : rest.slice(0, slash);
  const tail = slash < 0 ? '' : rest.slice(slash);
  const colon = head.lastIndexOf(':');
  const verb = colon < 0 ? '' : head.slice(colon + 1);
  const taskId = decode(colon < 0 ? head : head.slice(0, colon));
  if (taskId === undefined) return undefined;
  if (tail === '') {
    if (verb === '') return method === 'GET' ? at(GET_TASK, taskId) : undefined;
    if (verb === 'cancel') return method === 'POST' ? at(CANCEL_TASK, taskId) : undefined;
    if (verb === 'subscribe' || verb === 'resubscribe') return method === 'POST' || method === 'GET' ? at(SUBSCRIBE, taskId) : undefined;
    return undefined;
  }
  if (verb !== '') return undefined;
  if (tail === '/pushNotificationConfigs') return method === 'POST' ? at(CREATE_PUSH, taskId) : method === 'GET' ? at(LIST_PUSH, taskId) : undefined;
  if (tail.startsWith('/pushNotificationConfigs/') && decode(tail.slice('/pushNotificationConfigs/'.length)) !== undefined) {
    return method === 'GET' ? at(GET_PUSH, taskId) : method === 'DELETE' ? at(DELETE_PUSH, taskId) : undefined;
  }
  return undefined;
}

type Params = Record<string, unknown> | undefined;

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * The message a send carries: `message`, or `request` (the v0.3 REST proto's field name, which the SDK also decodes).
 * The SDK's decoders accept snake_case spellings too (`task_id`, `reference_task_ids`, `push_notification_config`):
 * everything below reads every spelling the SDK would act on, so no spelling slips past a check.
 */
export function messageOf(params: Params): Record<string, unknown> | undefined {
  return obj(params?.message) ?? obj(params?.request);
}

/** The task a call addresses: `id` (GetTask, CancelTask...), `taskId` (push configs in 1.0), or 0.3's `id`. */
export function taskIdOf(o: Operation, params: Params): string | undefined {
  if (params === undefined) return undefined;
  if (o.sends) {
    const m = messageOf(params);
    return str(m?.taskId) ?? str(m?.task_id);
  }
  if (!o.addressesTask) return undefined;
  if (o === GET_TASK || o === CANCEL_TASK || o === SUBSCRIBE) return str(params.id);
  // Push configs: 1.0 names the task `taskId`; 0.3 `taskId` for set, `id` for get/list/delete.
  return str(params.taskId) ?? str(params.task_id) ?? (o === CREATE_PUSH ? undefined : str(params.id));
}

/** Every task id a call names, in any spelling (the message's task and references, both message fields). */
export function taskIdsNamed(o: Operation, params: Params): string[] {
  if (params === undefined) return [];
  const out = new Set<string>();
  const add = (v: unknown): void => {
    const id = str(v);
    if (id !== undefined) out.add(id);
  };
  if (o.sends) {
    for (const m of [obj(params.message), obj(params.request)]) {
      if (m === undefined) continue;
      add(m.taskId);
      add(m.task_id);
      for (const refs of [m.referenceTaskIds, m.reference_task_ids]) if (Array.isArray(refs)) refs.forEach(add);
    }
  } else if (o.addressesTask) {
    add(taskIdOf(o, params));
    add(params.taskId);
    add(params.task_id);
  }
  return [...out];
}

/** Every object holding a push-notification config's `url` (1.0 and 0.3 shapes, any spelling, JSON-RPC or REST). */
export function pushHoldersOf(o: Operation, params: Params): Record<string, unknown>[] {
  if (!o.push || params === undefined) return [];
  const found = (list: unknown[]): Record<string, unknown>[] => [...new Set(list.map(obj).filter((x) => x !== undefined))];
  if (o.sends) {
    const c = obj(params.configuration);
    return c === undefined ? [] : found([c.taskPushNotificationConfig, c.task_push_notification_config, c.pushNotificationConfig, c.push_notification_config, c.pushNotification, c.push_notification]);
  }
  const config = obj(params.config);
  const holders = found([params.pushNotificationConfig, params.push_notification_config, config?.pushNotificationConfig, config?.push_notification_config, config]);
  return holders.length > 0 ? holders : [params];
}

/** The push-notification URLs a call carries (null: a `url` that is not a string). */
export function pushUrlsOf(o: Operation, params: Params): (string | null)[] {
  return pushHoldersOf(o, params)
    .filter((h) => h.url !== undefined)
    .map((h) => (typeof h.url === 'string' ? h.url : null));
}

/** The first push-notification URL a call carries (undefined: none; null: not a string). */
export function pushUrlOf(o: Operation, params: Params): string | undefined | null {
  return pushUrlsOf(o, params)[0];
}

/** The skill a message names in its metadata (`skill` or `skillId`, on the message or the request). */
export function namedSkill(params: Params): string | undefined {
  if (params === undefined) return undefined;
  const m = obj(messageOf(params)?.metadata);
  const r = obj(params.metadata);
  return str(m?.skill) ?? str(m?.skillId) ?? str(r?.skill) ?? str(r?.skillId);
}

/** The part kinds of a message (text, data, file/url/raw), for policy: what is sent, not its content. */
export function partKinds(params: Params): string[] {
  const parts = messageOf(params)?.parts ?? messageOf(params)?.content;
  if (!Array.isArray(parts)) return [];
  const kinds = new Set<string>();
  for (const p of parts) {
    const part = obj(p);
    if (part === undefined) continue;
    if (typeof part.kind === 'string') kinds.add(part.kind);
    else if ('text' in part) kinds.add('text');
    else if ('data' in part) kinds.add('data');
    else if ('url' in part || 'raw' in part || 'file' in part) kinds.add('file');
  }
  return [...kinds].sort();
}
