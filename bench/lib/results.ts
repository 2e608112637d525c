// The JSON results file (bench/results/*.json) and the conditions printed above the table.
import type { Sizes } from './context.js';
import type { Figure } from './report.js';

export interface WorkloadResult {
  id: string;
  title: string;
  status: 'ok' | 'skipped' | 'failed';
  message?: string;
  seconds: number;
  /** Each figure holds every raw sample of every series. */
  figures: Figure[];
}

export interface Results {
  format: 'chainlog-bench/1';
  date: string;
  git: { commit: string | null; dirty: boolean | null };
  machine: {
    cores: number;
    cpuModel: string;
    memoryBytes: number;
    platform: string;
    node: string;
    loadAverageAtStart: number[];
    loadAverageAtEnd?: number[];
  };
  postgres: { server: 'embedded' | 'DATABASE_URL'; settings: Record<string, string> };
  options: {
    quick: boolean;
    events: number;
    tableEvents: number;
    reps: { light: number; heavy: number };
    only: string[];
    sizes: Sizes;
  };
  /** Average bytes hashed per event: the canonical encoding and the data digest's input. */
  eventShape: { canonicalBytes: number; digestInputBytes: number } | null;
  workloads: WorkloadResult[];
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(0)} GiB`;
const load = (l?: number[]) => (l ? l.map((x) => x.toFixed(2)).join(' ') : '?');

/** Where and how the figures were measured, as lines of text or a Markdown list. */
export function renderConditions(r: Results, style: 'text' | 'markdown' = 'text'): string {
  const s = r.postgres.settings;
  const shape = r.eventShape
    ? `${Math.round(r.eventShape.canonicalBytes + r.eventShape.digestInputBytes)} bytes hashed per event ` +
      `(${Math.round(r.eventShape.canonicalBytes)} canonical + ${Math.round(r.eventShape.digestInputBytes)} data-digest input)`
    : 'unknown';
  const lines = [
    `date: ${r.date}; commit ${r.git.commit?.slice(0, 12) ?? 'unknown'}${r.git.dirty ? ' (with uncommitted changes)' : ''}`,
    `machine: ${r.machine.cores} cores (${r.machine.cpuModel}), ${gib(r.machine.memoryBytes)}, ${r.machine.platform}, Node ${r.machine.node}; ` +
      `load average ${load(r.machine.loadAverageAtStart)} at start, ${load(r.machine.loadAverageAtEnd)} at end`,
    `PostgreSQL ${s.server_version} (${r.postgres.server === 'embedded' ? 'embedded, default settings' : 'DATABASE_URL'}): ` +
      `fsync=${s.fsync}, synchronous_commit=${s.synchronous_commit}, shared_buffers=${s.shared_buffers}, ` +
      `max_parallel_workers_per_gather=${s.max_parallel_workers_per_gather}, wal_level=${s.wal_level}, ` +
      `jit=${s.jit}${s.jit_available === 'true' ? '' : ' (not available)'}, max_wal_size=${s.max_wal_size}`,
    `sizes: ${r.options.quick ? 'QUICK (tiny; targets not judged), ' : ''}events=${r.options.events.toLocaleString('en')}, ` +
      `N=${r.options.tableEvents.toLocaleString('en')}, repetitions ${r.options.reps.light} (1–4, 6b) / ${r.options.reps.heavy} (5–9) after a warm-up, ${r.options.sizes.searchQueries} queries per search filter; ${shape}`,
  ];
  return style === 'markdown' ? lines.map((l) => `- ${l}`).join('\n') : lines.join('\n');
}
