// Figures, targets, and their rendering: the table on stdout, Markdown for docs/PERFORMANCE.md, JSON.
import { pairwiseRatios, summarize, type Summary } from './stats.js';

/** rate: higher is better, shown as median and min–max. latency: lower is better, shown as p50 and p95. */
export type Display = 'rate' | 'latency';

export interface Series {
  name: string;
  /** 'events/s', 'rows/s', 'MB/s', 'hashes/s', 'ms' */
  unit: string;
  display: Display;
  samples: number[];
  summary: Summary;
}

export type TargetKind =
  /** the speed ratio chainlog ÷ this baseline is at least `value` */
  | 'ratio-at-least'
  /** the speed ratio is within 1 ± value */
  | 'flat'
  /** the median of chainlog's series is at least `value` */
  | 'at-least'
  /** the p95 of chainlog's latencies is below `value` */
  | 'p95-below';

export interface Target {
  kind: TargetKind;
  value: number;
  text: string;
}

export type Status = 'met' | 'missed' | 'not judged';

export interface Row {
  series: Series;
  /** Baseline rows: the speed of chainlog's series ÷ this one's, pair by pair (1.00× = as fast). */
  ratio?: { samples: number[]; summary: Summary };
  target?: Target;
  status?: Status;
}

export interface Figure {
  id: string;
  title: string;
  /** rows[0] is chainlog's measurement; the others are its baselines. */
  rows: Row[];
  notes: string[];
}

export function series(name: string, unit: string, samples: number[], display: Display = 'rate'): Series {
  return { name, unit, display, samples, summary: summarize(samples) };
}

const speed = (s: Series, i: number) => (s.display === 'latency' ? 1 / s.samples[i]! : s.samples[i]!);

function judge(target: Target, subject: Series, ratio: Summary | undefined): boolean {
  switch (target.kind) {
    case 'ratio-at-least':
      return ratio !== undefined && ratio.median >= target.value;
    case 'flat':
      return ratio !== undefined && Math.abs(ratio.median - 1) <= target.value;
    case 'at-least':
      return subject.summary.median >= target.value;
    case 'p95-below':
      return subject.summary.p95 < target.value;
  }
}

export interface FigureSpec {
  id: string;
  title: string;
  subject: Series;
  /** Target on chainlog's own figure (absolute ones). */
  target?: Target;
  /** ratio: false for a reference in other units (hashes/s beside events/s): no ratio is shown. */
  baselines?: Array<{ series: Series; target?: Target; ratio?: boolean }>;
  notes?: string[];
  /**
   * Also note each later baseline's speed ÷ the first baseline's, pair by pair. The ratio on a
   * baseline's row is chainlog ÷ that baseline; this says where the second baseline itself stands
   * (the hash-only trigger against the plain table, say), which the rows alone do not.
   */
  compareBaselines?: boolean;
  /** False in --quick runs: the sizes are too small for the targets to mean anything. */
  judged: boolean;
}

export function figure(spec: FigureSpec): Figure {
  const status = (t: Target, ratio?: Summary): Status => (!spec.judged ? 'not judged' : judge(t, spec.subject, ratio) ? 'met' : 'missed');
  const rows: Row[] = [
    spec.target ? { series: spec.subject, target: spec.target, status: status(spec.target) } : { series: spec.subject },
  ];
  for (const b of spec.baselines ?? []) {
    if (b.ratio === false) {
      rows.push({ series: b.series });
      continue;
    }
    const samples = speedRatios(spec.subject, b.series);
    const ratio = { samples, summary: summarize(samples) };
    rows.push(b.target ? { series: b.series, ratio, target: b.target, status: status(b.target, ratio.summary) } : { series: b.series, ratio });
  }
  const notes = [...(spec.notes ?? [])];
  const [first, ...later] = spec.baselines ?? [];
  if (spec.compareBaselines && first) {
    for (const b of later) {
      notes.push(`${b.series.name} ÷ ${first.series.name}: ${formatRatios(summarize(speedRatios(b.series, first.series)))}, pair by pair`);
    }
  }
  return { id: spec.id, title: spec.title, rows, notes };
}

/** x's speed ÷ y's, sample by sample (samples of the same index come from the same round). */
function speedRatios(x: Series, y: Series): number[] {
  const n = Math.min(x.samples.length, y.samples.length);
  return pairwiseRatios(Array.from({ length: n }, (_, i) => speed(x, i)), Array.from({ length: n }, (_, i) => speed(y, i)));
}

// ---------------------------------------------------------------------------------------------------
// Formatting

export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  if (a >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

export function formatValue(x: number, unit: string): string {
  return unit === 'ms' ? `${formatNumber(x)} ms` : `${formatNumber(x)} ${unit}`;
}

const formatRatio = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');
/** The median ratio, and its min–max when there are several. */
const formatRatios = (r: Summary) => (r.n > 1 ? `${formatRatio(r.median)} (${r.min.toFixed(2)}–${r.max.toFixed(2)})` : formatRatio(r.median));

interface Cells {
  measure: string;
  median: string;
  spread: string;
  ratio: string;
  target: string;
  status: string;
}

function cells(row: Row): Cells {
  const s = row.series;
  const sum = s.summary;
  const median = s.display === 'latency' ? `p50 ${formatValue(sum.median, s.unit)}` : formatValue(sum.median, s.unit);
  const spread =
    s.display === 'latency'
      ? `p95 ${formatValue(sum.p95, s.unit)} (n=${sum.n})`
      : sum.n > 1
        ? `${formatNumber(sum.min)}–${formatNumber(sum.max)} (n=${sum.n})`
        : `(n=${sum.n})`;
  const ratio = row.ratio ? formatRatios(row.ratio.summary) : '';
  return { measure: s.name, median, spread, ratio, target: row.target?.text ?? '', status: row.status ?? '' };
}

const HEAD: Cells = {
  measure: 'measure',
  median: 'median',
  spread: 'spread: min–max (n) or p95',
  ratio: 'chainlog ÷ row',
  target: 'target',
  status: 'status',
};

/** The readable table printed at the end of a run. */
export function renderText(figures: readonly Figure[]): string {
  const all = figures.flatMap((f) => f.rows.map(cells));
  const keys = Object.keys(HEAD) as Array<keyof Cells>;
  const width = Object.fromEntries(keys.map((k) => [k, Math.max(HEAD[k].length, ...all.map((c) => c[k].length))])) as Record<keyof Cells, number>;
  const line = (c: Cells) => '    ' + keys.map((k) => c[k].padEnd(width[k])).join('  ').trimEnd();
  const out: string[] = [line(HEAD)];
  for (const f of figures) {
    out.push(`${f.id.padEnd(3)} ${f.title}`);
    for (const r of f.rows) out.push(line(cells(r)));
    for (const n of f.notes) out.push(`      note: ${n}`);
  }
  out.push('', 'Speed ratio: chainlog\'s rate ÷ the row\'s rate (for latencies, the row\'s time ÷ chainlog\'s); 1.00× = as fast. Pairs of alternating samples; median (min–max).');
  return out.join('\n');
}

const mdEscape = (s: string) => s.replace(/\|/g, '\\|');

/** The same table as GitHub Markdown, for pasting into docs/PERFORMANCE.md. */
export function renderMarkdown(figures: readonly Figure[]): string {
  const out = [
    '| # | workload | measure | median | spread | chainlog ÷ row | target | status |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const f of figures) {
    f.rows.forEach((r, i) => {
      const c = cells(r);
      out.push(
        `| ${i === 0 ? f.id : ''} | ${i === 0 ? mdEscape(f.title) : ''} | ${mdEscape(c.measure)} | ${c.median} | ${c.spread} | ${c.ratio} | ${mdEscape(c.target)} | ${c.status} |`,
      );
    });
  }
  const notes = figures.flatMap((f) => f.notes.map((n) => `- ${f.id}: ${n}`));
  if (notes.length) out.push('', ...notes);
  return out.join('\n');
}
