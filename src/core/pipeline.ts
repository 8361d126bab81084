import type { ConfigSnapshot } from '../config/load.ts';
import type { Call, Target } from './call.ts';
import { toGatewayError, type GatewayError } from './errors.ts';

/**
 * A guard has one job (authenticate, authorize, limit, account, audit...). Guards are composed in order by the
 * Pipeline; each is switched by config and measurable alone. A guard never sees the wire protocol: only the Call.
 */
export interface Guard {
  readonly name: string;
  /**
   * True for a guard that establishes who is calling (sets `call.principal`): `Pipeline.authenticate` runs only
   * these, so an adapter can authenticate from the headers before it reads a body or creates anything.
   */
  readonly authenticates?: boolean;
  /**
   * Runs before the call is forwarded. Throw a GatewayError (or reject) to refuse the call. Return nothing when the
   * decision is synchronous: the pipeline stays synchronous when every guard is.
   */
  admit?(call: Call): void | Promise<void>;
  /**
   * For list operations: which of these targets may the caller see? Returns one boolean per target. A guard that
   * does not implement it lets everything through.
   */
  visible?(call: Call, targets: readonly Target[]): readonly boolean[] | Promise<readonly boolean[]>;
  /**
   * Runs once the call has ended (forwarded, refused or failed), in pipeline order, so accounting guards settle
   * before the audit guard (last) records the final state. May return a promise (e.g. a budget reconciled in
   * Redis): the guards after it then settle once it has finished, failed or timed out; a failure is noted in
   * `call.settleFailures` so the audit record shows it. Should not throw (a throw counts as a failure).
   */
  settle?(call: Call): void | Promise<void>;
}

/** How long an asynchronous settle step may take before the guards after it settle without it. */
export const SETTLE_TIMEOUT_MS = 10_000;

/**
 * A long-lived service behind one or more guards (identity, policy, limits, audit), reconfigured from each
 * snapshot. The gateway builds each snapshot's Pipeline from these, in order.
 */
export interface GuardServices {
  /** Guards in pipeline order, already configured for the snapshot. */
  guardsFor(snapshot: ConfigSnapshot): Guard[];
}

export interface PipelineObserver {
  /** Called when a guard starts/ends its admit step (telemetry uses it for child spans). Optional. */
  stage?(call: Call, guard: string, phase: 'start' | 'end', error?: GatewayError): void;
}

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as Promise<unknown>).then === 'function';
}

/** Ordered guards. Immutable: a config reload builds a new Pipeline and swaps it with the snapshot. */
export class Pipeline {
  readonly guards: readonly Guard[];
  private readonly admitters: readonly Guard[];
  private readonly filters: readonly Guard[];
  private readonly authenticators: readonly Guard[];
  private readonly settlers: readonly Guard[];
  private readonly observer: PipelineObserver | undefined;
  private readonly settleTimeoutMs: number;

  constructor(guards: readonly Guard[], observer?: PipelineObserver, options?: { settleTimeoutMs?: number }) {
    this.settleTimeoutMs = options?.settleTimeoutMs ?? SETTLE_TIMEOUT_MS;
    this.guards = Object.freeze([...guards]);
    this.admitters = this.guards.filter((g) => g.admit !== undefined);
    this.filters = this.guards.filter((g) => g.visible !== undefined);
    this.authenticators = this.admitters.filter((g) => g.authenticates === true);
    this.settlers = this.guards.filter((g) => g.settle !== undefined);
    this.observer = observer?.stage ? observer : undefined;
  }

  /**
   * Runs every guard's admit step in order. Returns undefined when all guards decided synchronously, otherwise a
   * promise. Throws/rejects with a GatewayError when a guard refuses; the call's outcome is not set here (the
   * adapter sets it from the error so that it can also account for errors raised outside guards).
   */
  admit(call: Call): void | Promise<void> {
    const guards = this.admitters;
    for (let i = 0; i < guards.length; i++) {
      const result = this.runOne(guards[i]!, call);
      if (isPromise(result)) return this.admitFrom(call, i, result);
    }
    return undefined;
  }

  /**
   * Runs only the authenticating guards (identity): who is calling, from the request's headers, before the body is
   * read. `admit` later runs them again (a cache hit). Same contract as `admit`: undefined when synchronous.
   */
  authenticate(call: Call): void | Promise<void> {
    const guards = this.authenticators;
    for (let i = 0; i < guards.length; i++) {
      const result = guards[i]!.admit!(call);
      if (isPromise(result)) {
        return (async () => {
          await result;
          for (let j = i + 1; j < guards.length; j++) await guards[j]!.admit!(call);
        })();
      }
    }
    return undefined;
  }

  private async admitFrom(call: Call, index: number, pending: Promise<void>): Promise<void> {
    await pending;
    const guards = this.admitters;
    for (let i = index + 1; i < guards.length; i++) {
      const result = this.runOne(guards[i]!, call);
      if (isPromise(result)) await result;
    }
  }

  private runOne(guard: Guard, call: Call): void | Promise<void> {
    const observer = this.observer;
    if (observer === undefined) return guard.admit!(call);
    observer.stage!(call, guard.name, 'start');
    let result: void | Promise<void>;
    try {
      result = guard.admit!(call);
    } catch (err) {
      observer.stage!(call, guard.name, 'end', toGatewayError(err));
      throw err;
    }
    if (isPromise(result)) {
      return result.then(
        () => observer.stage!(call, guard.name, 'end'),
        (err: unknown) => {
          observer.stage!(call, guard.name, 'end', toGatewayError(err));
          throw err;
        },
      );
    }
    observer.stage!(call, guard.name, 'end');
    return undefined;
  }

  /** True when some guard filters lists (so adapters must parse and filter list results). */
  get filtersLists(): boolean {
    return this.filters.length > 0;
  }

  /** Combines every guard's visibility verdict: a target is visible only if all guards agree. */
  async visible(call: Call, targets: readonly Target[]): Promise<boolean[]> {
    const verdict = new Array<boolean>(targets.length).fill(true);
    for (const guard of this.filters) {
      const seen = await guard.visible!(call, targets);
      for (let i = 0; i < verdict.length; i++) if (!seen[i]) verdict[i] = false;
    }
    return verdict;
  }

  /**
   * Runs every settle step in order. Never throws: a failing settler must not lose the others. Returns undefined
   * when every step was synchronous, otherwise a promise that resolves (never rejects) once all have settled; a
   * step runs only after the asynchronous steps before it finished, so the audit guard (last) records final state.
   */
  settle(call: Call, onError: (guard: string, err: unknown) => void): void | Promise<void> {
    const settlers = this.settlers;
    for (let i = 0; i < settlers.length; i++) {
      const result = this.settleOne(settlers[i]!, call, onError);
      if (result !== undefined) return this.settleFrom(call, i, result, onError);
    }
    return undefined;
  }

  private settleOne(guard: Guard, call: Call, onError: (guard: string, err: unknown) => void): Promise<void> | undefined {
    let result: void | Promise<void>;
    try {
      result = guard.settle!(call);
    } catch (err) {
      settleFailed(call, guard.name);
      onError(guard.name, err);
      return undefined;
    }
    return isPromise(result) ? result : undefined;
  }

  private async settleFrom(call: Call, index: number, pending: Promise<void>, onError: (guard: string, err: unknown) => void): Promise<void> {
    const settlers = this.settlers;
    await this.awaitSettle(settlers[index]!, call, pending, onError);
    for (let i = index + 1; i < settlers.length; i++) {
      const result = this.settleOne(settlers[i]!, call, onError);
      if (result !== undefined) await this.awaitSettle(settlers[i]!, call, result, onError);
    }
  }

  private async awaitSettle(guard: Guard, call: Call, pending: Promise<void>, onError: (guard: string, err: unknown) => void): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.settleTimeoutMs);
      timer.unref();
    });
    try {
      const outcome = await Promise.race([pending, timeout]);
      if (outcome === 'timeout') {
        settleFailed(call, guard.name);
        onError(guard.name, new Error(`settle did not finish within ${this.settleTimeoutMs} ms`));
      }
    } catch (err) {
      settleFailed(call, guard.name);
      onError(guard.name, err);
    } finally {
      clearTimeout(timer);
    }
  }
}

function settleFailed(call: Call, guard: string): void {
  (call.settleFailures ??= []).push(guard);
}
