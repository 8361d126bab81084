/**
 * One loaded policy: a WASM instance of a bundle's policy.wasm with its data, evaluated synchronously in process.
 * A reload builds a new engine and swaps the reference; an engine is never mutated after load.
 *
 * Evaluation uses the OPA WASM ABI 1.2 single-call path directly (opa_eval) with the input given as JSON text that
 * is encoded straight into WASM memory, instead of opa-wasm's evaluate() (which re-stringifies an object and copies
 * it twice). Loading, builtins and data still go through opa-wasm.
 */
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { EvalClock, customBuiltins } from './builtins.ts';
import type { PolicyBundle } from './bundle.ts';

const PAGE = 64 * 1024;

// The WebAssembly global as used here (its full typings live in lib.dom, which this Node project does not load).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
declare const WebAssembly: { compile(bytes: Uint8Array): Promise<object> };

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

interface OpaExports {
  opa_eval(reserved: number, entrypoint: number, data: number, input: number, inputLen: number, heapPtr: number, format: number): number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

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
  private readonly exports: OpaExports;
  private readonly clock: EvalClock;
  private readonly fast: boolean;
  private view: Uint8Array;

  private constructor(bundle: PolicyBundle, policy: LoadedPolicy, clock: EvalClock) {
    this.bundle = bundle;
    this.revision = bundle.revision;
    this.source = bundle.source;
    this.policy = policy;
    this.clock = clock;
    this.memory = policy.mem as WasmMemory;
    const instance = policy.wasmInstance as unknown as WasmInstance;
    this.exports = instance.exports as unknown as OpaExports;
    this.entrypoints = new Map(Object.entries(policy.entrypoints as Record<string, number>));
    this.fast = typeof policy.minorVersion === 'number' && policy.minorVersion >= 2 && typeof this.exports.opa_eval === 'function';
    this.view = new Uint8Array(this.memory.buffer);
  }

  /** Compiles and instantiates a bundle's WASM with bounded memory and loads its data. */
  static async load(bundle: PolicyBundle, memory: MemoryBounds): Promise<PolicyEngine> {
    const clock = new EvalClock();
    const module = await WebAssembly.compile(bundle.wasm);
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
    let out: string;
    try {
      out = this.fast ? this.evalFast(id, inputJson) : JSON.stringify(this.policy.evaluate(JSON.parse(inputJson), id));
    } catch (err) {
      const message = err instanceof RangeError ? `memory bound exceeded (${describe(err)})` : describe(err);
      throw new PolicyEvalError(message, at, { cause: err });
    }
    let rs: unknown;
    try {
      rs = JSON.parse(out);
    } catch (err) {
      throw new PolicyEvalError('policy returned malformed JSON', at, { cause: err });
    }
    if (!Array.isArray(rs)) throw new PolicyEvalError('policy returned no result set', at);
    if (rs.length === 0) return undefined;
    if (rs.length > 1) throw new PolicyEvalError('policy returned more than one result', at);
    return (rs[0] as { result?: unknown }).result;
  }

  private evalFast(id: number, json: string): string {
    const base = this.policy.dataHeapPtr as number;
    let view = this.viewOf();
    let { read, written } = encoder.encodeInto(json, view.subarray(base));
    if (read < json.length) {
      // Not enough room: grow to fit (throws RangeError past the memory bound, which fails the call closed).
      const need = base + Buffer.byteLength(json) - this.memory.buffer.byteLength;
      this.memory.grow(Math.ceil(need / PAGE));
      view = this.viewOf();
      ({ read, written } = encoder.encodeInto(json, view.subarray(base)));
    }
    const addr = this.exports.opa_eval(0, id, this.policy.dataAddr, base, written, base + written, 0);
    view = this.viewOf(); // evaluation may have grown memory
    const end = view.indexOf(0, addr);
    return decoder.decode(view.subarray(addr, end < 0 ? view.length : end));
  }

  /** A byte view of memory, renewed when growth replaced the buffer. */
  private viewOf(): Uint8Array {
    if (this.view.buffer !== this.memory.buffer) this.view = new Uint8Array(this.memory.buffer);
    return this.view;
  }
}
