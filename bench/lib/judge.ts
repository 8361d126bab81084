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

/** A pooled verdict: the judged value over every round's samples taken together, and how many rounds they came from. */
export interface PooledVerdict<T> extends Verdict<T> {
  readonly pooled: number;
}

/**
 * The verdict for scenarios of a few hundred requests a round against a backend with its own tail (a real Triton, an
 * SDK agent): a p99 of 80-200 samples is the slowest one to three of them, so the difference of two such p99s
 * (gateway minus direct) is mostly which target drew the backend's stalls. Here every round is measured and
 * reported, and the contract is judged on the samples of all rounds pooled (the p99 of 600 requests rests on the
 * slowest six); when that breaches the limit, as many rounds again are measured and the pool of all of them decides.
 * A gateway that really adds more than the limit to one request in a hundred fails both times.
 */
export async function judgePooled<T>(
  rounds: number,
  limit: number,
  measure: (round: number) => Promise<{ result: T; value: number }>,
  pooled: (results: readonly T[]) => number,
  onAttempt?: (round: number, value: number, repeat: boolean) => void,
): Promise<PooledVerdict<T>> {
  const out: RoundVerdict<T>[] = [];
  const run = async (repeat: boolean): Promise<number> => {
    for (let r = 0; r < rounds; r++) {
      const m = await measure(r);
      onAttempt?.(r, m.value, repeat);
      out.push({ round: r, kept: m.result, value: m.value, repeated: repeat, failed: m.value > limit });
    }
    return pooled(out.map((o) => o.kept));
  };
  let value = await run(false);
  if (value > limit) value = await run(true);
  return { breach: value > limit, rounds: out, pooled: value };
}
