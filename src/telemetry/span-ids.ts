/**
 * What lets the call tracer make its spans when a call ends rather than on the request path (tracing.ts, "deferred"):
 * the sampler is consulted when the call begins (its decision goes into the propagated context), and the ids the
 * context was propagated with are handed to the SDK when the spans are finally made.
 *
 * Both objects are the ones given to the SDK (sdk.ts), so the spans it exports are exactly the ones whose context
 * the upstream received: the same trace id, span ids and sampling decision.
 */
import { diag } from '@opentelemetry/api';
import { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, RandomIdGenerator, TraceIdRatioBasedSampler, type IdGenerator, type Sampler } from '@opentelemetry/sdk-trace-base';

/**
 * An IdGenerator whose next ids can be chosen ahead of a `startSpan`: `preset` before it, `clear` right after it
 * (the SDK asks for the span id first and for a trace id only for a root span, so a preset trace id it did not take
 * must not reach the next span). Outside a preset it is the SDK's random generator.
 */
export class PresetIds implements IdGenerator {
  private readonly random = new RandomIdGenerator();
  private span: string | undefined;
  private trace: string | undefined;

  preset(traceId: string | undefined, spanId: string): void {
    this.trace = traceId;
    this.span = spanId;
  }

  clear(): void {
    this.trace = undefined;
    this.span = undefined;
  }

  newSpanId(): string {
    return this.random.generateSpanId();
  }

  newTraceId(): string {
    return this.random.generateTraceId();
  }

  generateSpanId(): string {
    const s = this.span;
    if (s === undefined) return this.random.generateSpanId();
    this.span = undefined;
    return s;
  }

  generateTraceId(): string {
    const t = this.trace;
    if (t === undefined) return this.random.generateTraceId();
    this.trace = undefined;
    return t;
  }
}

/** What the tracer needs to make spans after the fact: the SDK's own sampler and id generator. */
export interface DeferredSpans {
  readonly sampler: Sampler;
  readonly ids: PresetIds;
}

function ratio(env: NodeJS.ProcessEnv): number {
  const raw = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  const n = raw === undefined || raw === '' ? NaN : Number(raw);
  if (Number.isFinite(n) && n >= 0 && n <= 1) return n;
  diag.error(`OTEL_TRACES_SAMPLER_ARG=${raw ?? ''} is blank or out of range ([0..1]), defaulting to 1.`);
  return 1;
}

/**
 * The sampler OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG name, as NodeSDK builds it (default and unknown values:
 * parentbased_always_on).
 */
export function samplerFromEnv(env: NodeJS.ProcessEnv): Sampler {
  const name = env.OTEL_TRACES_SAMPLER?.trim();
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio(env));
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio(env)) });
    case undefined:
    case '':
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    default:
      diag.error(`unknown OTEL_TRACES_SAMPLER value "${name}", using parentbased_always_on`);
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}
