/**
 * Per-principal counters behind the caps (`mcp.limits`; the A2A and OpenAI ownership tables): a newcomer takes a slot
 * or is refused; a slot is given back when what it stood for ends. Nothing here ever takes a slot away from its holder.
 */
export class PrincipalSlots {
  private readonly held = new Map<string, number>();

  /** Takes a slot for `principal` under `cap`: the release function (idempotent), or undefined at the cap. */
  take(principal: string | undefined, cap: number): (() => void) | undefined {
    const key = principal ?? '';
    const n = this.held.get(key) ?? 0;
    if (n >= cap) return undefined;
    this.held.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(key) ?? 1) - 1;
      if (left <= 0) this.held.delete(key);
      else this.held.set(key, left);
    };
  }

  /** Slots `principal` holds now. */
  count(principal: string | undefined): number {
    return this.held.get(principal ?? '') ?? 0;
  }

  clear(): void {
    this.held.clear();
  }
}
