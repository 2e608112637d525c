// Workload 9: exportEvents() (src/export.ts) of one stream of `events` events, in each format, against
// a raw COPY (SELECT the same columns) TO STDOUT of the same rows into Node: the fastest way rows can
// leave PostgreSQL. Both write into a sink that discards, so the disk is not measured.
import { SkipWorkload, type BenchContext, type Workload } from '../lib/context.js';
import { copyOut, nullSink } from '../lib/copyout.js';
import { figure, series, type Figure } from '../lib/report.js';
import { alternate, timed, type Variant } from '../lib/timing.js';

const STREAM = 'verify';
const FORMATS = ['csv', 'ndjson'] as const;

export const exportWorkloads: Workload[] = [
  {
    id: '9',
    title: 'export',
    run: async (ctx: BenchContext): Promise<Figure[]> => {
      let mod: typeof import('../../src/export.js');
      try {
        mod = await import('../../src/export.js');
      } catch (e) {
        throw new SkipWorkload(`src/export.js cannot be loaded yet (${(e as Error).message.split('\n')[0]})`);
      }
      const { exportEvents, EXPORT_COLUMNS } = mod;
      const client = await ctx.connect(await ctx.dataset('chain'));
      const n = ctx.sizes.events;
      // The columns and order the export uses, without its JSON building or its pinned snapshot.
      const raw = `copy (select ${EXPORT_COLUMNS.join(', ')} from chainlog.events where stream = '${STREAM}' order by seq, id) to stdout (format csv)`;
      const variants: Variant[] = [];
      const mb: Record<string, number[]> = {};
      const record = (name: string, bytes: number, seconds: number) => (mb[name] ??= []).push(bytes / 1e6 / seconds);
      for (const format of FORMATS) {
        variants.push({
          name: format,
          run: async ({ warmup }) => {
            const output = nullSink();
            const { seconds, value } = await timed(() =>
              exportEvents({ db: client, stream: STREAM, format, output }),
            );
            const rows = Number(value.rows);
            if (rows !== n) throw new Error(`export wrote ${rows} rows, expected ${n}`);
            if (!warmup) record(format, Number(value.bytes), seconds);
            return rows / seconds;
          },
        });
      }
      variants.push({
        name: 'raw',
        run: async ({ warmup }) => {
          const { seconds, value } = await timed(() => copyOut(client, raw));
          if (value.rows !== n) throw new Error(`raw COPY read ${value.rows} rows, expected ${n}`);
          if (!warmup) record('raw', value.bytes, seconds);
          return value.rows / seconds;
        },
      });
      const samples = await alternate(variants, {
        reps: ctx.reps.heavy,
        onSample: (v, rep, x) => ctx.log(`  9 ${v} #${rep + 1}: ${Math.round(x)} rows/s`),
      });
      const size = n.toLocaleString('en');
      return FORMATS.map((format) =>
        figure({
          id: '9',
          title: `exportEvents() of ${size} events, ${format.toUpperCase()}, against raw COPY (SELECT the same columns) TO STDOUT, CSV`,
          subject: series(`chainlog export, ${format}`, 'rows/s', samples[format]!),
          baselines: [
            { series: series('raw COPY TO STDOUT (baseline)', 'rows/s', samples.raw!), target: { kind: 'ratio-at-least', value: 0.9, text: '≥ 0.90×' } },
            { series: series(`chainlog export, ${format}`, 'MB/s', mb[format]!), ratio: false },
            { series: series('raw COPY TO STDOUT', 'MB/s', mb.raw!), ratio: false },
          ],
          judged: !ctx.quick,
        }),
      );
    },
  },
];
