/**
 * Latency histograms in microseconds (HDR, 3 significant digits). autocannon's own latency histogram records whole
 * milliseconds, too coarse for a sub-millisecond overhead, so the runner records each response time itself.
 */
import hdr from 'hdr-histogram-js';

export type Histogram = ReturnType<typeof hdr.build>;

/** Percentiles of one run, in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export function newHistogram(): Histogram {
  return hdr.build({ bitBucketSize: 64, autoResize: true, lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

/** Records a duration given in milliseconds (float). */
export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.max(1, Math.round(ms * 1000)));
}

export function summarize(h: Histogram): LatencySummary {
  const us = (v: number): number => Math.round(v) / 1000;
  return {
    count: h.totalCount,
    mean: us(h.mean),
    p50: us(h.getValueAtPercentile(50)),
    p90: us(h.getValueAtPercentile(90)),
    p99: us(h.getValueAtPercentile(99)),
    max: us(h.maxValue),
  };
}

/** The raw histogram, compressed (HdrHistogram's standard base64 encoding; decode with decodeHistogram). */
export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

export function decodeHistogram(s: string): Histogram {
  return hdr.decodeFromCompressedBase64(s);
}

/** A percentile (ms) of several runs' samples taken together (encoded histograms, e.g. one per round). */
export function pooledPercentile(encoded: readonly string[], percentile: number): number {
  const all = newHistogram();
  for (const e of encoded) all.add(decodeHistogram(e));
  return Math.round(all.getValueAtPercentile(percentile)) / 1000;
}

/** Median of a list (the spread across rounds is reported next to it). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
