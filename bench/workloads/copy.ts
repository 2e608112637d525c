// Workload 5: bulk loading. COPY FROM STDIN of `events` events in one statement, and the client's
// appendMany() (COPY in batches, one transaction each) against a plain COPY of the same batches.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { columnsFor, copyChunks, copyLine, makeEvent, TABLE, type BenchEvent, type Target } from '../lib/data.js';
import { SkipWorkload, type BenchContext, type Workload } from '../lib/context.js';
import { figure, series, type Figure } from '../lib/report.js';
import { alternate, timed, type Variant } from '../lib/timing.js';

const NAMES: Record<Target, string> = {
  chainlog: 'chainlog',
  plain: 'plain table (baseline)',
  hashed: 'hash-only trigger, no chain',
};

export async function copyRows(client: pg.ClientBase, target: Target, chunks: Iterable<string>): Promise<void> {
  const sink = client.query(copyFrom(`copy ${TABLE[target]} (${columnsFor(target).join(', ')}) from stdin`));
  await pipeline(Readable.from(chunks), sink);
}

async function copyFigure(ctx: BenchContext, client: pg.Client): Promise<Figure> {
  const targets: Target[] = ['chainlog', 'plain', 'hashed'];
  const next: Record<Target, number> = { chainlog: 1, plain: 1, hashed: 1 };
  const variants: Variant[] = targets.map((t) => ({
    name: t,
    run: async ({ warmup }) => {
      const n = warmup ? Math.max(1_000, Math.ceil(ctx.sizes.events / 10)) : ctx.sizes.events;
      const first = next[t];
      next[t] += n;
      // One stream, continued from sample to sample; the baselines store seq = event number.
      const { seconds } = await timed(() => copyRows(client, t, copyChunks(t, 'w5', first, n)));
      return n / seconds;
    },
  }));
  const samples = await alternate(variants, {
    reps: ctx.reps.heavy,
    beforeEach: () => ctx.checkpoint(client),
    onSample: (v, rep, x) => ctx.log(`  5a ${v} #${rep + 1}: ${Math.round(x)} events/s`),
  });
  const s = (t: Target) => series(NAMES[t], 'events/s', samples[t]!);
  return figure({
    id: '5a',
    title: `COPY FROM STDIN, ${ctx.sizes.events.toLocaleString('en')} events in one statement, one stream`,
    subject: s('chainlog'),
    baselines: [{ series: s('plain'), target: { kind: 'ratio-at-least', value: 0.5, text: '≥ 0.50×' } }, { series: s('hashed') }],
    compareBaselines: true,
    judged: !ctx.quick,
  });
}

async function appendManyFigure(ctx: BenchContext, client: pg.Client): Promise<Figure> {
  let createChainlog: typeof import('../../src/client.js').createChainlog;
  try {
    ({ createChainlog } = await import('../../src/client.js'));
  } catch (e) {
    throw new SkipWorkload(`appendMany(): src/client.js cannot be loaded yet (${(e as Error).message.split('\n')[0]})`);
  }
  const chainlog = createChainlog({ client });
  const batchSize = Math.min(ctx.sizes.appendManyBatch, ctx.sizes.events);
  const calls = Math.max(1, Math.round(ctx.sizes.events / batchSize));
  // One batch of event objects, made once and passed again on every call: the timed part is what
  // the library does with them (serialize, COPY, one transaction), not making them.
  const batch: BenchEvent[] = Array.from({ length: batchSize }, (_, i) => makeEvent('w5b', i + 1));
  let plainSeq = 1;
  const variants: Variant[] = [
    {
      name: 'chainlog',
      run: async ({ warmup }) => {
        const n = warmup ? Math.max(1, Math.ceil(calls / 10)) : calls;
        const { seconds } = await timed(async () => {
          for (let c = 0; c < n; c++) await chainlog.appendMany(batch);
        });
        return (n * batchSize) / seconds;
      },
    },
    {
      name: 'plain',
      run: async ({ warmup }) => {
        const n = warmup ? Math.max(1, Math.ceil(calls / 10)) : calls;
        const { seconds } = await timed(async () => {
          for (let c = 0; c < n; c++) {
            // The same objects serialized by hand into a plain COPY: what appendMany() saves you writing.
            const seq0 = plainSeq;
            plainSeq += batch.length;
            await copyRows(client, 'plain', (function* () {
              let chunk = '';
              for (let i = 0; i < batch.length; i++) {
                chunk += copyLine('plain', batch[i]!, seq0 + i);
                if (chunk.length > 256 * 1024) {
                  yield chunk;
                  chunk = '';
                }
              }
              if (chunk) yield chunk;
            })());
          }
        });
        return (n * batchSize) / seconds;
      },
    },
  ];
  const samples = await alternate(variants, {
    reps: ctx.reps.heavy,
    beforeEach: () => ctx.checkpoint(client),
    onSample: (v, rep, x) => ctx.log(`  5b ${v} #${rep + 1}: ${Math.round(x)} events/s`),
  });
  return figure({
    id: '5b',
    title: `appendMany() (client), ${calls} calls of ${batchSize.toLocaleString('en')} events, against COPY of the same batches into a plain table`,
    subject: series('chainlog appendMany()', 'events/s', samples.chainlog!),
    baselines: [
      { series: series('plain table, COPY (baseline)', 'events/s', samples.plain!), target: { kind: 'ratio-at-least', value: 0.5, text: '≥ 0.50×' } },
    ],
    judged: !ctx.quick,
  });
}

const copy: Workload = {
  id: '5',
  title: 'bulk load: COPY FROM STDIN, and appendMany()',
  run: async (ctx) => {
    const client = await ctx.connect(await ctx.scratchDatabase('w5'));
    const figures = [await copyFigure(ctx, client)];
    try {
      figures.push(await appendManyFigure(ctx, client));
    } catch (e) {
      if (!(e instanceof SkipWorkload)) throw e;
      ctx.log(`  5b skipped: ${e.message}`);
      figures[0]!.notes.push(`5b skipped: ${e.message}`);
    }
    return figures;
  },
};

export const copyWorkloads: Workload[] = [copy];
