// Timing and the alternating repetition loop every workload uses.

/** Seconds elapsed while `fn` runs, with its result. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, value };
}

export interface RepContext {
  /** 0-based repetition; negative during warm-up. */
  rep: number;
  warmup: boolean;
}

export interface Variant {
  name: string;
  /** Runs one sample and returns its figure (a rate, usually). */
  run: (ctx: RepContext) => Promise<number>;
}

export interface AlternateOptions {
  reps: number;
  /** Warm-up rounds, not recorded: caches, prepared plans, JIT of Node's own code. Default 1. */
  warmup?: number;
  /** Runs before every sample, warm-up included, outside the timed section (e.g. CHECKPOINT). */
  beforeEach?: () => Promise<void>;
  /** Called after each recorded sample, for progress output. */
  onSample?: (variant: string, rep: number, value: number) => void;
}

/**
 * Runs every variant `reps` times, alternating, and returns the samples per variant. The order is
 * reversed on every other round (A B C, C B A, ...) so slow drift in background load, table size or
 * WAL position does not favour whichever variant always runs first.
 */
export async function alternate(variants: readonly Variant[], options: AlternateOptions): Promise<Record<string, number[]>> {
  const samples: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v.name, []]));
  const warmup = options.warmup ?? 1;
  for (let w = 0; w < warmup; w++) {
    for (const v of variants) {
      await options.beforeEach?.();
      await v.run({ rep: -1 - w, warmup: true });
    }
  }
  for (let rep = 0; rep < options.reps; rep++) {
    const order = rep % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      await options.beforeEach?.();
      const value = await v.run({ rep, warmup: false });
      samples[v.name]!.push(value);
      options.onSample?.(v.name, rep, value);
    }
  }
  return samples;
}
