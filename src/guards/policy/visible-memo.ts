/**
 * Memoized list filters: the visible entrypoint's answer for one list input, kept per policy engine (a new revision
 * is a new engine: the memo starts empty) and keyed by the whole input except its time (`request.time_ns`): the
 * principal with its claims, route, operation, upstream, source address, the configured headers and every target.
 * A caller listing the same tools again costs building that key and a lookup, not a WASM evaluation of every name.
 *
 * Bounded (least recently used first) and with a TTL, so that a visible rule that reads the time sees it at most
 * `ttlMs` late; `ttlMs: 0` turns the memo off.
 */
import type { PolicyEngine } from './engine.ts';

export interface VisibleAnswer {
  /** The decision id of the evaluation that produced it. */
  readonly id: string;
  readonly names: ReadonlySet<string>;
  /** The policy's raw value (for the decision log). */
  readonly value: unknown;
  readonly until: number;
}

export class VisibleMemo {
  private engine: PolicyEngine | undefined;
  private readonly entries = new Map<string, VisibleAnswer>();
  readonly maxEntries: number;
  readonly ttlMs: number;

  constructor(maxEntries: number, ttlMs: number) {
    this.maxEntries = maxEntries;
    this.ttlMs = ttlMs;
  }

  get enabled(): boolean {
    return this.ttlMs > 0 && this.maxEntries > 0;
  }

  get size(): number {
    return this.entries.size;
  }

  get(engine: PolicyEngine, key: string, now: number): VisibleAnswer | undefined {
    if (engine !== this.engine) {
      this.entries.clear();
      this.engine = engine;
      return undefined;
    }
    const a = this.entries.get(key);
    if (a === undefined) return undefined;
    this.entries.delete(key);
    if (now >= a.until) return undefined;
    this.entries.set(key, a);
    return a;
  }

  set(engine: PolicyEngine, key: string, answer: Omit<VisibleAnswer, 'until'>, now: number): void {
    if (!this.enabled) return;
    if (engine !== this.engine) {
      this.entries.clear();
      this.engine = engine;
    }
    if (!this.entries.delete(key) && this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { ...answer, until: now + this.ttlMs });
  }
}
