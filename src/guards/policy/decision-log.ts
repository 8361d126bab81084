/**
 * The decision log: every policy decision as an event, for the audit and telemetry guards.
 *
 *     const off = policy.decisionLog.subscribe((event, call) => { ... });
 *
 * Events follow OPA's decision-log fields (decision_id, path, input, result, bundles, timestamp, trace_id) plus
 * Tollgate's (call_id, allow, reason, error, eval_ns). The input is masked before a listener sees it: paths from
 * the config (`decisionLog.mask`) and the decision's own `obligations.redact` (pointers into target.arguments)
 * are erased and listed in `erased`. Nothing is built when no one listens, so the hot path pays nothing for it.
 * Listeners run synchronously on the request path: keep them cheap (enqueue, do not write).
 */
import type { Call } from '../../core/call.ts';
import type { Logger } from '../../telemetry/logger.ts';

export interface DecisionEvent {
  readonly decision_id: string;
  /** RFC 3339 time of the decision (formatted when read). */
  readonly timestamp: string;
  /** The time of the decision in ms since the epoch. */
  readonly time: number;
  /** The entrypoint evaluated, e.g. `tollgate/decision`. */
  readonly path: string;
  /** The input document, masked (parsed from `inputJson` when read). */
  readonly input: unknown;
  /** The masked input as JSON text: what a listener that only stores or forwards the input should use. */
  readonly inputJson: string;
  /** The policy's raw value (undefined when the rule was undefined or evaluation failed). */
  readonly result: unknown;
  readonly allow: boolean;
  readonly reason: string | undefined;
  /** Input paths erased by masking (JSON pointers from the input root). */
  readonly erased: readonly string[];
  readonly bundles: { readonly [name: string]: { readonly revision: string } };
  /** The bundle's origin (file, directory, URL). */
  readonly source: string;
  /** W3C trace id of the request (traceparent), when it carried one. */
  readonly trace_id: string | undefined;
  readonly call_id: string;
  /** Why evaluation failed (the call was denied, fail closed). */
  readonly error: string | undefined;
  /** Evaluation time in nanoseconds (input building included). */
  readonly eval_ns: number;
  /** Set when the answer was not evaluated but memoized: the decision id of the evaluation that produced it. */
  readonly memo_of?: string | undefined;
}

/** What the policy guard knows of one evaluation; the event derives the rest when a listener asks for it. */
export interface DecisionFacts {
  readonly decision_id: string;
  readonly time: number;
  readonly path: string;
  /**
   * The input as evaluated (JSON text), and the pointers to erase from it before anyone sees it. A function when the
   * answer was memoized: the text is then built only if a listener reads it.
   */
  readonly rawInput: string | (() => string);
  readonly pointers: readonly string[];
  readonly result: unknown;
  readonly allow: boolean;
  readonly reason: string | undefined;
  readonly revision: string;
  readonly source: string;
  readonly trace_id: string | undefined;
  readonly call_id: string;
  readonly error: string | undefined;
  readonly eval_ns: number;
  readonly memo_of?: string | undefined;
}

/**
 * A decision event built lazily: the guard pays for the facts it has anyway; masking (a parse, the erasure and a
 * re-serialisation) happens once, and only when masking is configured or asked for by the decision; `input` is
 * parsed and `timestamp` formatted only when a listener reads them. The audit listener reads `inputJson`, so an
 * unmasked input goes from the policy input to the audit record without being parsed.
 */
export class LazyDecisionEvent implements DecisionEvent {
  readonly decision_id: string;
  readonly time: number;
  readonly path: string;
  readonly result: unknown;
  readonly allow: boolean;
  readonly reason: string | undefined;
  readonly source: string;
  readonly trace_id: string | undefined;
  readonly call_id: string;
  readonly error: string | undefined;
  readonly eval_ns: number;
  readonly memo_of: string | undefined;
  private readonly revision: string;
  private json: string | (() => string);
  private doc: unknown;
  private readonly _erased: readonly string[];

  constructor(f: DecisionFacts) {
    this.decision_id = f.decision_id;
    this.time = f.time;
    this.path = f.path;
    this.result = f.result;
    this.allow = f.allow;
    this.reason = f.reason;
    this.revision = f.revision;
    this.source = f.source;
    this.trace_id = f.trace_id;
    this.call_id = f.call_id;
    this.error = f.error;
    this.eval_ns = f.eval_ns;
    this.memo_of = f.memo_of;
    if (f.pointers.length === 0) {
      this.json = f.rawInput;
      this.doc = undefined;
      this._erased = [];
    } else {
      // Masked at once: the unmasked input is never kept past this point.
      const raw = typeof f.rawInput === 'string' ? f.rawInput : f.rawInput();
      this.doc = JSON.parse(raw);
      this._erased = erase(this.doc, f.pointers);
      this.json = this._erased.length === 0 ? raw : JSON.stringify(this.doc);
    }
  }

  get timestamp(): string {
    return new Date(this.time).toISOString();
  }

  get input(): unknown {
    // Parsed once, on first read; listeners must not edit it.
    return this.doc !== undefined ? this.doc : (this.doc = JSON.parse(this.inputJson));
  }

  get inputJson(): string {
    const j = this.json;
    return typeof j === 'string' ? j : (this.json = j());
  }

  get erased(): readonly string[] {
    return this._erased;
  }

  get bundles(): { readonly [name: string]: { readonly revision: string } } {
    return { tollgate: { revision: this.revision } };
  }

  toJSON(): Record<string, unknown> {
    return {
      decision_id: this.decision_id,
      timestamp: this.timestamp,
      path: this.path,
      input: this.input,
      result: this.result,
      allow: this.allow,
      reason: this.reason,
      erased: this.erased,
      bundles: this.bundles,
      source: this.source,
      trace_id: this.trace_id,
      call_id: this.call_id,
      error: this.error,
      eval_ns: this.eval_ns,
      memo_of: this.memo_of,
    };
  }
}

export type DecisionListener = (event: DecisionEvent, call: Call) => void;

/** Fan-out of decision events to listeners (audit, telemetry). */
export class DecisionLog {
  private listeners: DecisionListener[] = [];
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: DecisionListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** True when someone listens: callers build events only then. */
  get active(): boolean {
    return this.listeners.length > 0;
  }

  emit(event: DecisionEvent, call: Call): void {
    for (const l of this.listeners) {
      try {
        l(event, call);
      } catch (err) {
        this.log.error({ err, decision: event.decision_id }, 'decision-log listener failed');
      }
    }
  }
}

/** The trace id of a W3C traceparent header (`00-<trace-id>-<parent-id>-<flags>`). */
export function traceIdOf(call: Call): string | undefined {
  const tp = call.request.headers.traceparent;
  if (typeof tp !== 'string' || tp.length < 55) return undefined;
  const id = tp.slice(3, 35);
  return /^[0-9a-f]{32}$/.test(id) && id !== '0'.repeat(32) ? id : undefined;
}

function unescape(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** Erases JSON-pointer paths from a (freshly parsed, owned) document; returns the paths that existed. */
export function erase(doc: unknown, pointers: readonly string[]): string[] {
  const erased: string[] = [];
  for (const pointer of pointers) {
    const keys = pointer.split('/').slice(1).map(unescape);
    let node: unknown = doc;
    for (let i = 0; i < keys.length - 1 && node !== undefined; i++) {
      node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[keys[i]!] : undefined;
    }
    const last = keys[keys.length - 1];
    if (last === undefined || typeof node !== 'object' || node === null) continue;
    if (Array.isArray(node)) {
      const idx = Number(last);
      if (Number.isInteger(idx) && idx >= 0 && idx < node.length) {
        node[idx] = null;
        erased.push(pointer);
      }
    } else if (Object.hasOwn(node, last)) {
      delete (node as Record<string, unknown>)[last];
      erased.push(pointer);
    }
  }
  return erased;
}
