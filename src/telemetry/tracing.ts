/**
 * Hand-made spans for each call (no auto-instrumentation): a SERVER span from the moment the adapter creates the Call
 * to Gateway.finish, the guard stages (authenticate, authorize, limit...) fed by the PipelineObserver, and a CLIENT
 * `upstream` span whose context is propagated to the upstream (for MCP, in `params._meta` per SEP-414).
 *
 * Guard stages are, by default (`telemetry.tracing.stages: events`), events of the server span: one per stage, at
 * the time it started, with its guard, its duration (`tollgate.stage.duration_ms`) and, when it refused the call,
 * `error.type`. `stages: spans` makes a child span per stage instead (durations drawn in a trace view), at about
 * twice the tracing cost per call (bench/NOTES.md): each span is an object, two ids, a processor pass and a trip to
 * the export thread; an event is one small object carried by the server span.
 *
 * The parent is the client's W3C trace context: from the MCP request's `params._meta` when present (the MCP
 * convention), else from the HTTP `traceparent`/`tracestate` headers. Attributes follow the GenAI/MCP conventions.
 * None of this runs when tracing is off: the gateway then holds no CallTracer at all.
 *
 * Deferred spans (the gateway's own SDK, `deferred` given): nothing of the SDK runs on the request path. When a call
 * begins the tracer only asks the SDK's sampler and picks the span ids; the upstream gets that context; the stage
 * events are kept as plain records; the spans themselves are made when the call ends, with their start times and
 * the ids already propagated (span-ids.ts). The exported spans are the same as eager ones. Without `deferred` (a
 * tracer from some other provider) the spans are made as the call goes.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  isSpanContextValid,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api';
import { SamplingDecision } from '@opentelemetry/sdk-trace-base';
import type { Call } from '../core/call.ts';
import type { GatewayError } from '../core/errors.ts';
import type { PipelineObserver } from '../core/pipeline.ts';
import { TRACE_KEY, type TraceHandle } from './context.ts';
import { modelOutcome, NAMED_TARGETS, PROVIDERS, spanName, usageTokens } from './genai.ts';
import * as A from './semconv.ts';
import type { DeferredSpans } from './span-ids.ts';

/** Guard names as the other guards spell them, mapped to the stage names the spans use. */
const STAGES: Readonly<Record<string, string>> = {
  identity: 'authenticate',
  authn: 'authenticate',
  authenticate: 'authenticate',
  policy: 'authorize',
  authz: 'authorize',
  authorize: 'authorize',
  limits: 'limit',
  limit: 'limit',
  ratelimit: 'limit',
};

/** An MCP protocol version's shape (a refused request's header is not copied into a span as it came). */
const PROTOCOL_VERSION = /^\d{4}-\d{2}-\d{2}$/;

const headerGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const v = carrier[key];
    return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? (v[0] as string) : undefined;
  },
};

/** A span still to be made (deferred mode): what its `startSpan` will be given. */
interface PendingSpan {
  readonly name: string;
  readonly spanId: string;
  readonly attributes: Attributes;
  /** performance.now() when it started. */
  readonly started: number;
}

/** A stage event still to be added to the server span (deferred mode). */
interface PendingEvent {
  readonly name: string;
  readonly attributes: Attributes;
  readonly time: number;
}

/** Per-call tracing state, kept in `call.scratch` under TRACE_KEY. */
class CallTrace implements TraceHandle {
  /** The server span; in deferred mode undefined until the call ends. */
  span: Span | undefined;
  /** The context children and the upstream descend from (the server span, or its span context when deferred). */
  readonly ctx: Context;
  readonly traceId: string;
  /** False when the sampler dropped this trace: then no child spans are made, only the context is passed on. */
  readonly recording: boolean;
  stage: Span | undefined;
  stageGuard: string | undefined;
  /** performance.now() when the current stage started (stages as events). */
  stageStart: number;
  upstream: Span | undefined;
  /** Deferred mode: the server span to make (its parent context and, for a new trace, the trace id to give it). */
  pending: { readonly parent: Context; readonly rootTraceId: string | undefined; readonly server: PendingSpan } | undefined;
  events: PendingEvent[] | undefined;
  pendingUpstream: PendingSpan | undefined;

  constructor(span: Span | undefined, ctx: Context, traceId: string, recording: boolean) {
    this.span = span;
    this.ctx = ctx;
    this.traceId = traceId;
    this.recording = recording;
    this.stage = undefined;
    this.stageGuard = undefined;
    this.stageStart = 0;
    this.upstream = undefined;
    this.pending = undefined;
    this.events = undefined;
    this.pendingUpstream = undefined;
  }
}

/** How guard stages appear in a sampled trace. */
export type StageMode = 'events' | 'spans';

export class CallTracer implements PipelineObserver {
  private readonly tracer: Tracer;
  readonly stages: StageMode;
  private readonly deferred: DeferredSpans | undefined;

  /** `deferred`: the sampler and id generator `tracer`'s provider was built with (spans made when a call ends). */
  constructor(tracer: Tracer, options: { stages?: StageMode; deferred?: DeferredSpans | undefined } = {}) {
    this.tracer = tracer;
    this.stages = options.stages ?? 'events';
    this.deferred = options.deferred;
  }

  /** Starts the call's server span. `meta` is the MCP request's `params._meta` (undefined for other protocols). */
  begin(call: Call, meta: unknown): void {
    let parent: Context = ROOT_CONTEXT;
    if (typeof meta === 'object' && meta !== null && typeof (meta as Record<string, unknown>).traceparent === 'string') {
      parent = propagation.extract(ROOT_CONTEXT, meta as Record<string, unknown>, headerGetter);
    } else if (call.request.headers.traceparent !== undefined) {
      parent = propagation.extract(ROOT_CONTEXT, call.request.headers as Record<string, unknown>, headerGetter);
    }
    const attributes: Attributes = {
      [A.ATTR_PROTOCOL]: call.protocol,
      [A.ATTR_ROUTE]: call.route.name,
      [A.ATTR_CALL_ID]: call.id,
      [A.ATTR_NETWORK_TRANSPORT]: 'tcp',
      [A.ATTR_NETWORK_PROTOCOL_NAME]: 'http',
      [A.ATTR_CLIENT_ADDRESS]: call.request.remoteAddress,
    };
    if (call.protocol === 'mcp') {
      attributes[A.ATTR_MCP_METHOD_NAME] = call.operation;
      // The version the transport accepted (it refuses an unsupported one before a Call exists); absent on initialize
      // and on the legacy transport, which carry none in a header.
      const version = call.request.headers['mcp-protocol-version'];
      if (typeof version === 'string' && PROTOCOL_VERSION.test(version)) attributes[A.ATTR_MCP_PROTOCOL_VERSION] = version;
    }
    if (call.rpcId !== undefined) attributes[A.ATTR_JSONRPC_REQUEST_ID] = String(call.rpcId);
    const d = this.deferred;
    if (d !== undefined) {
      call.scratch.set(TRACE_KEY, this.beginDeferred(d, call.operation, attributes, parent));
      return;
    }
    const span = this.tracer.startSpan(call.operation, { kind: SpanKind.SERVER, attributes }, parent);
    call.scratch.set(TRACE_KEY, new CallTrace(span, trace.setSpan(ROOT_CONTEXT, span), span.spanContext().traceId, span.isRecording()));
  }

  /** The server span's context decided now (ids, the sampler's decision), the span itself made at `end`. */
  private beginDeferred(d: DeferredSpans, name: string, attributes: Attributes, parent: Context): CallTrace {
    const parentContext = trace.getSpanContext(parent);
    const child = parentContext !== undefined && isSpanContextValid(parentContext);
    const traceId = child ? parentContext.traceId : d.ids.newTraceId();
    const sampled = d.sampler.shouldSample(parent, traceId, name, SpanKind.SERVER, attributes, []);
    const recording = sampled.decision !== SamplingDecision.NOT_RECORD;
    const spanContext: SpanContext = {
      traceId,
      spanId: d.ids.newSpanId(),
      traceFlags: sampled.decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE,
      traceState: sampled.traceState ?? (child ? parentContext.traceState : undefined),
    };
    const t = new CallTrace(undefined, trace.setSpanContext(ROOT_CONTEXT, spanContext), traceId, recording);
    if (recording) {
      if (sampled.attributes !== undefined) Object.assign(attributes, sampled.attributes);
      t.pending = { parent, rootTraceId: child ? undefined : traceId, server: { name, spanId: spanContext.spanId, attributes, started: performance.now() } };
      t.events = [];
    }
    return t;
  }

  /** Makes a deferred span with the ids its context was propagated with. */
  private make(d: DeferredSpans, kind: SpanKind, p: PendingSpan, parent: Context, rootTraceId?: string): Span {
    d.ids.preset(rootTraceId, p.spanId);
    try {
      return this.tracer.startSpan(p.name, { kind, attributes: p.attributes, startTime: p.started }, parent);
    } finally {
      d.ids.clear();
    }
  }

  /** Deferred mode: the server span (with its stage events) and the upstream span, made now. */
  private materialize(d: DeferredSpans, t: CallTrace): void {
    const pending = t.pending;
    if (pending === undefined) return;
    t.pending = undefined;
    const span = this.make(d, SpanKind.SERVER, pending.server, pending.parent, pending.rootTraceId);
    for (const e of t.events ?? []) span.addEvent(e.name, e.attributes, e.time);
    t.events = undefined;
    t.span = span;
    const up = t.pendingUpstream;
    if (up !== undefined) {
      t.pendingUpstream = undefined;
      t.upstream = this.make(d, SpanKind.CLIENT, up, trace.setSpan(ROOT_CONTEXT, span));
    }
  }

  /** PipelineObserver: one event of the server span (or one child span) per guard's admit step. */
  stage(call: Call, guard: string, phase: 'start' | 'end', error?: GatewayError): void {
    const t = call.scratch.get(TRACE_KEY) as CallTrace | undefined;
    if (t === undefined || !t.recording) return;
    if (this.stages === 'events') {
      if (phase === 'start') {
        t.stageGuard = guard;
        t.stageStart = performance.now();
        return;
      }
      if (t.stageGuard !== guard) return;
      const start = t.stageStart;
      const attributes: Attributes = { [A.ATTR_GUARD]: guard, [A.ATTR_STAGE_DURATION_MS]: Math.round((performance.now() - start) * 1000) / 1000 };
      if (error !== undefined) attributes[A.ATTR_ERROR_TYPE] = error.code;
      if (t.events !== undefined) t.events.push({ name: STAGES[guard] ?? guard, attributes, time: start });
      else t.span?.addEvent(STAGES[guard] ?? guard, attributes, start);
      t.stageGuard = undefined;
      return;
    }
    if (phase === 'start') {
      t.stage = this.tracer.startSpan(STAGES[guard] ?? guard, { kind: SpanKind.INTERNAL, attributes: { [A.ATTR_GUARD]: guard } }, t.ctx);
      t.stageGuard = guard;
      return;
    }
    const span = t.stage;
    if (span === undefined || t.stageGuard !== guard) return;
    if (error !== undefined) {
      span.setAttribute(A.ATTR_ERROR_TYPE, error.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    }
    span.end();
    t.stage = undefined;
    t.stageGuard = undefined;
  }

  /**
   * Starts the upstream CLIENT span and returns the W3C fields (`traceparent`, `tracestate`) that carry its context to
   * the upstream, or undefined when the call is not traced.
   */
  propagate(call: Call): Record<string, string> | undefined {
    const t = call.scratch.get(TRACE_KEY) as CallTrace | undefined;
    if (t === undefined) return undefined;
    const fields: Record<string, string> = {};
    if (!t.recording) {
      // Sampled out: pass the (unsampled) context on so the upstream agrees, without making spans nobody keeps.
      propagation.inject(t.ctx, fields);
      return fields;
    }
    const target = call.target;
    const local = target?.local ?? target?.name;
    const name = spanName(call, local);
    const attributes: Attributes = { [A.ATTR_UPSTREAM]: call.upstream ?? '' };
    if (call.protocol === 'mcp') attributes[A.ATTR_MCP_METHOD_NAME] = call.operation;
    if (target?.kind === 'tool' && local !== undefined) {
      attributes[A.ATTR_GEN_AI_TOOL_NAME] = local;
      attributes[A.ATTR_GEN_AI_OPERATION_NAME] = 'execute_tool';
    } else if (target?.kind === 'model' && local !== undefined) {
      // The upstream span is the GenAI inference span of the conventions: the model as the backend is asked for it.
      attributes[A.ATTR_GEN_AI_REQUEST_MODEL] = local;
      const operation = call.model?.operation;
      if (operation !== undefined) attributes[A.ATTR_GEN_AI_OPERATION_NAME] = operation;
      const provider = PROVIDERS[call.protocol];
      if (provider !== undefined) attributes[A.ATTR_GEN_AI_PROVIDER_NAME] = provider;
    }
    if (this.deferred !== undefined) {
      const spanId = this.deferred.ids.newSpanId();
      t.pendingUpstream = { name, spanId, attributes, started: performance.now() };
      propagation.inject(trace.setSpanContext(ROOT_CONTEXT, { ...trace.getSpanContext(t.ctx)!, spanId }), fields);
      return fields;
    }
    const span = this.tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, t.ctx);
    t.upstream = span;
    propagation.inject(trace.setSpan(ROOT_CONTEXT, span), fields);
    return fields;
  }

  /** Ends the call's spans with its final state (called once, after the guards settled). */
  end(call: Call): void {
    const t = call.scratch.get(TRACE_KEY) as CallTrace | undefined;
    if (t === undefined) return;
    const d = this.deferred;
    if (d !== undefined) {
      if (!t.recording) return;
      this.materialize(d, t);
    }
    // Deferred spans were given a start time, so they are given their end time too (else the SDK takes Date.now()).
    const endTime = d !== undefined ? performance.now() : undefined;
    const err = call.error;
    if (t.stage !== undefined) {
      t.stage.end();
      t.stage = undefined;
    }
    if (t.upstream !== undefined) {
      if (call.target?.kind === 'model' && t.recording) modelOutcome(t.upstream, call);
      const transfer = call.transfer;
      if (transfer !== undefined && t.recording) {
        // Bytes sent to and received from the upstream, as the forwarder counted them.
        t.upstream.setAttribute(A.ATTR_HTTP_REQUEST_BODY_SIZE, transfer.requestBytes);
        t.upstream.setAttribute(A.ATTR_HTTP_RESPONSE_BODY_SIZE, transfer.responseBytes);
      }
      if (call.outcome === 'upstream_error' || call.outcome === 'error' || call.outcome === 'cancelled') {
        t.upstream.setAttribute(A.ATTR_ERROR_TYPE, err?.code ?? 'rpc_error');
        t.upstream.setStatus({ code: SpanStatusCode.ERROR, message: err?.message ?? 'upstream answered with a JSON-RPC error' });
      }
      t.upstream.end(endTime);
    }
    const span = t.span;
    if (span === undefined) return;
    if (!span.isRecording()) {
      span.end();
      return;
    }
    const target = call.target;
    if (target !== undefined) {
      if (NAMED_TARGETS.has(target.kind)) span.updateName(spanName(call, target.name));
      switch (target.kind) {
        case 'tool':
          span.setAttribute(A.ATTR_GEN_AI_TOOL_NAME, target.name);
          if (call.operation === 'tools/call') span.setAttribute(A.ATTR_GEN_AI_OPERATION_NAME, 'execute_tool');
          break;
        case 'prompt':
          span.setAttribute(A.ATTR_GEN_AI_PROMPT_NAME, target.name);
          break;
        case 'resource':
          span.setAttribute(A.ATTR_MCP_RESOURCE_URI, target.name);
          break;
        case 'model': {
          span.setAttribute(A.ATTR_GEN_AI_REQUEST_MODEL, target.name);
          const m = call.model;
          if (m?.operation !== undefined) span.setAttribute(A.ATTR_GEN_AI_OPERATION_NAME, m.operation);
          const provider = PROVIDERS[call.protocol];
          if (provider !== undefined) span.setAttribute(A.ATTR_GEN_AI_PROVIDER_NAME, provider);
          modelOutcome(span, call);
          break;
        }
        case 'skill':
          span.setAttribute(A.ATTR_GEN_AI_AGENT_NAME, target.server ?? target.name);
          break;
        default:
          break;
      }
    }
    if (call.upstream !== undefined) span.setAttribute(A.ATTR_UPSTREAM, call.upstream);
    if (call.sessionId !== undefined && call.protocol === 'mcp') span.setAttribute(A.ATTR_MCP_SESSION_ID, call.sessionId);
    if (call.principal !== undefined) span.setAttribute(A.ATTR_PRINCIPAL_ID, call.principal.id);
    if (call.decision !== undefined) {
      span.setAttribute(A.ATTR_DECISION_ID, call.decision.id);
      span.setAttribute(A.ATTR_DECISION_ALLOW, call.decision.allow);
    }
    const usage = call.usage;
    if (target?.kind !== 'model') usageTokens(span, call);
    if (usage?.cost !== undefined) span.setAttribute(A.ATTR_USAGE_COST, usage.cost);
    const limit = call.scratch.get('limits') as { decision?: unknown; refused?: unknown } | undefined;
    if (typeof limit?.decision === 'string') span.setAttribute(A.ATTR_LIMIT_DECISION, limit.decision);
    if (typeof limit?.refused === 'string') span.setAttribute(A.ATTR_LIMIT_REFUSED, limit.refused);
    span.setAttribute(A.ATTR_OUTCOME, call.outcome);
    if (call.status !== 0) span.setAttribute(A.ATTR_HTTP_RESPONSE_STATUS_CODE, call.status);
    if (err !== undefined) {
      span.setAttribute(A.ATTR_ERROR_TYPE, err.code);
      span.setAttribute(A.ATTR_RPC_RESPONSE_STATUS_CODE, String(err.def.rpc));
      span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
    } else if (call.outcome === 'error') {
      // The upstream answered with a JSON-RPC error (relayed as is).
      span.setAttribute(A.ATTR_ERROR_TYPE, 'rpc_error');
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end(endTime);
  }
}
