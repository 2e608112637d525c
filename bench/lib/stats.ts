// Summaries of repeated measurements. Few repetitions are the norm here (3–7), so the spread printed is
// min–max; quartiles are kept in the JSON for longer runs.

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  q1: number;
  q3: number;
  p95: number;
  mean: number;
}

/** Quantile with linear interpolation between closest ranks (the default of R and NumPy). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (pos - lo);
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((x, y) => x - y);
  return {
    n: sorted.length,
    median: quantile(sorted, 0.5),
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
    p95: quantile(sorted, 0.95),
    mean: sorted.reduce((s, x) => s + x, 0) / (sorted.length || 1),
  };
}

/**
 * Element-wise a[i] / b[i]. The variants of a workload are measured alternately, so sample i of each
 * ran under the same background load; the ratio of a pair is steadier on a shared machine than the
 * ratio of two medians.
 */
export function pairwiseRatios(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.min(a.length, b.length);
  return Array.from({ length: n }, (_, i) => a[i]! / b[i]!);
}
