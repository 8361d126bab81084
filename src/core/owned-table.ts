/**
 * A bounded in-memory table of things callers own for a while (A2A task bindings and push relay hooks, OpenAI stored
 * responses): each entry has an owner and an expiry. When it is full, or its owner holds its share, a newcomer is
 * refused; nothing live is ever dropped to make room (its owner would lose it), and no one caller can fill the table
 * for the others. Expired entries are forgotten when read, and swept (at most once a second) when room is short.
 */
import { Errors, GatewayError } from './errors.ts';
import { PrincipalSlots } from './slots.ts';

interface Entry<V> {
  readonly value: V;
  readonly until: number;
  readonly release: () => void;
}

export class OwnedTable<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly slots = new PrincipalSlots();
  private readonly what: string;
  private readonly max: number;
  private readonly perOwner: number;
  private swept = 0;

  /**
   * `max` entries at most; `perOwner` of them for one owner (default a tenth). `what` names the entries in the
   * refusals ("A2A tasks").
   */
  constructor(what: string, max: number, perOwner = Math.max(1, Math.floor(max / 10))) {
    this.what = what;
    this.max = max;
    this.perOwner = perOwner;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The live value under `key`, or undefined (an expired one is forgotten). */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.until > Date.now()) return e.value;
    this.drop(key, e);
    return undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Why `owner` could not add one more now (undefined: it can). */
  refusal(owner: string): GatewayError | undefined {
    if (this.entries.size >= this.max || this.slots.count(owner) >= this.perOwner) this.sweep();
    if (this.slots.count(owner) >= this.perOwner) {
      return new GatewayError(Errors.CAP_REACHED, `This identity holds ${this.perOwner} ${this.what} on this gateway already; retry when some have expired`);
    }
    if (this.entries.size >= this.max) return new GatewayError(Errors.OVERLOADED, `Too many ${this.what} are held on this gateway; retry later`);
    return undefined;
  }

  /** Throws the refusal of `owner`'s next entry, if any (before anything is forwarded for it). */
  assertRoom(owner: string): void {
    const refused = this.refusal(owner);
    if (refused !== undefined) throw refused;
  }

  /** Adds `value` for `owner` until `until` (ms since the epoch); false when refused (nothing else is touched). */
  add(key: string, owner: string, until: number, value: V): boolean {
    const old = this.entries.get(key);
    if (old !== undefined) this.drop(key, old);
    if (this.refusal(owner) !== undefined) return false;
    const release = this.slots.take(owner, this.perOwner);
    if (release === undefined) return false;
    this.entries.set(key, { value, until, release });
    return true;
  }

  /** Forgets `key` (its owner's share is given back). */
  delete(key: string): void {
    const e = this.entries.get(key);
    if (e !== undefined) this.drop(key, e);
  }

  private drop(key: string, e: Entry<V>): void {
    this.entries.delete(key);
    e.release();
  }

  private sweep(): void {
    const now = Date.now();
    if (now - this.swept < 1_000) return;
    this.swept = now;
    for (const [k, e] of this.entries) if (e.until <= now) this.drop(k, e);
  }
}
