/**
 * The gate's verdict over rounds: a round whose value exceeds the limit is measured once more, and the gate fails
 * only when the repeat fails too (one noisy round on a shared machine is not a breach; a real regression fails twice).
 */
export interface RoundVerdict<T> {
  readonly round: number;
  /** The measurement kept for this round (the repeat's, when the first attempt failed). */
  readonly kept: T;
  readonly value: number;
  readonly repeated: boolean;
  readonly failed: boolean;
}

export interface Verdict<T> {
  readonly breach: boolean;
  readonly rounds: ReadonlyArray<RoundVerdict<T>>;
}

/**
 * Runs `rounds` rounds of `measure` (which returns a measurement and the value judged), stopping at the first
 * breach. `onAttempt` sees every attempt (for progress output).
 */
export async function judgeRounds<T>(
  rounds: number,
  limit: number,
  measure: (round: number) => Promise<{ result: T; value: number }>,
  onAttempt?: (round: number, value: number, repeat: boolean) => void,
): Promise<Verdict<T>> {
  const out: RoundVerdict<T>[] = [];
  for (let r = 0; r < rounds; r++) {
    let m = await measure(r);
    onAttempt?.(r, m.value, false);
    let repeated = false;
    if (m.value > limit) {
      repeated = true;
      m = await measure(r);
      onAttempt?.(r, m.value, true);
    }
    const failed = m.value > limit;
    out.push({ round: r, kept: m.result, value: m.value, repeated, failed });
    if (failed) return { breach: true, rounds: out };
  }
  return { breach: false, rounds: out };
}
