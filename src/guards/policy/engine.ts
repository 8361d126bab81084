/**
 * One loaded policy: a WASM instance of a bundle's policy.wasm with its data, evaluated synchronously in process.
 * A reload builds a new engine and swaps the reference; an engine is never mutated after load.
 *
 * Everything goes through opa-wasm's public API: the input is handed to `evaluate()` as the JSON text's bytes (an
 * ArrayBuffer, its documented fast path: no re-stringifying of an object; ABI 1.2 evaluates it in one opa_eval
 * call), and the result set comes back parsed.
 */
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { EvalClock, customBuiltins } from './builtins.ts';
import type { PolicyBundle } from './bundle.ts';

const PAGE = 64 * 1024;

// The WebAssembly global as used here (its full typings live in lib.dom, which this Node project does not load).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
declare const WebAssembly: { compile(bytes: Uint8Array): Promise<object>; Module: new (bytes: Uint8Array) => object };

/**
 * Modules up to this size are compiled synchronously: V8 compiles lazily, so that takes ~0.1 ms, where the async
 * path's background task and hop back to the event loop cost 1-18 ms on a busy machine, in every policy reload.
 */
const INLINE_WASM_BYTES = 1024 * 1024;

/** Evaluation failed (policy error, conflict, memory bound, non-decision result): the call fails closed. */
export class PolicyEvalError extends Error {
  readonly entrypoint: string;
  readonly source: string;
  readonly revision: string;
  constructor(message: string, at: { entrypoint: string; source: string; revision: string }, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PolicyEvalError';
    this.entrypoint = at.entrypoint;
    this.source = at.source;
    this.revision = at.revision;
  }
}

export interface MemoryBounds {
  readonly initialPages: number;
  readonly maxPages: number;
}

const encoder = new TextEncoder();

/** Text of whatever a WASM abort / builtin / trap threw (opa-wasm throws strings and plain objects). */
function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  if (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string') return (err as { message: string }).message;
  return String(err);
}

export class PolicyEngine {
  readonly revision: string;
  readonly source: string;
  readonly bundle: PolicyBundle;
  /** Entrypoint name -> id in the module. */
  readonly entrypoints: ReadonlyMap<string, number>;
  private readonly policy: LoadedPolicy;
  private readonly memory: WasmMemory;
  private readonly clock: EvalClock;

  private constructor(bundle: PolicyBundle, policy: LoadedPolicy, clock: EvalClock) {
    this.bundle = bundle;
    this.revision = bundle.revision;
    this.source = bundle.source;
    this.policy = policy;
    this.clock = clock;
    this.memory = policy.mem as WasmMemory;
    this.entrypoints = new Map(Object.entries(policy.entrypoints as Record<string, number>));
  }

  /** Compiles and instantiates a bundle's WASM with bounded memory and loads its data. */
  static async load(bundle: PolicyBundle, memory: MemoryBounds): Promise<PolicyEngine> {
    const clock = new EvalClock();
    const module = bundle.wasm.byteLength <= INLINE_WASM_BYTES ? new WebAssembly.Module(bundle.wasm) : await WebAssembly.compile(bundle.wasm);
    let policy: LoadedPolicy;
    try {
      policy = await loadPolicy(module as Parameters<typeof loadPolicy>[0], { initial: memory.initialPages, maximum: memory.maxPages }, customBuiltins(clock));
      policy.setData(bundle.data);
    } catch (err) {
      throw new Error(`${bundle.source}: cannot instantiate policy.wasm: ${describe(err)}`, { cause: err });
    }
    return new PolicyEngine(bundle, policy, clock);
  }

  has(entrypoint: string): boolean {
    return this.entrypoints.has(entrypoint);
  }

  /** Current size of the WASM memory in bytes (it grows up to the configured bound, never shrinks). */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /**
   * Evaluates an entrypoint with the input given as JSON text. Returns the rule's value, or undefined when the rule
   * is undefined for this input. Throws PolicyEvalError for anything that went wrong.
   */
  evaluate(entrypoint: string, inputJson: string): unknown {
    const id = this.entrypoints.get(entrypoint);
    const at = { entrypoint, source: this.source, revision: this.revision };
    if (id === undefined) throw new PolicyEvalError(`entrypoint ${entrypoint} is not in the bundle`, at);
    this.clock.reset();
    let rs: unknown;
    try {
      // An exact-size copy of the bytes: opa-wasm reads the whole ArrayBuffer.
      const bytes = encoder.encode(inputJson);
      rs = this.policy.evaluate(bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer, id);
    } catch (err) {
      const message =
        err instanceof RangeError ? `memory bound exceeded (${describe(err)})` : err instanceof SyntaxError ? 'policy returned malformed JSON' : describe(err);
      throw new PolicyEvalError(message, at, { cause: err });
    }
    if (!Array.isArray(rs)) throw new PolicyEvalError('policy returned no result set', at);
    if (rs.length === 0) return undefined;
    if (rs.length > 1) throw new PolicyEvalError('policy returned more than one result', at);
    return (rs[0] as { result?: unknown }).result;
  }
}
