// Workloads 1–4: INSERT from a client, one row or 1000 rows per statement, one or eight sessions.
// Every statement is its own transaction (autocommit), so these include the commit's WAL flush, which
// is what an application that logs one event per request pays.
import type pg from 'pg';
import { columnsFor, makeEvent, rowValues, TABLE, type Target } from '../lib/data.js';
import type { BenchContext, Workload } from '../lib/context.js';
import { figure, series, type Figure, type Target as Goal } from '../lib/report.js';
import { alternate, timed, type Variant } from '../lib/timing.js';

const TARGETS: readonly Target[] = ['chainlog', 'plain', 'hashed'];

const NAMES: Record<Target, string> = {
  chainlog: 'chainlog',
  plain: 'plain table (baseline)',
  hashed: 'hash-only trigger, no chain',
};

function insertSql(target: Target, rows: number): string {
  const cols = columnsFor(target);
  const tuples = Array.from({ length: rows }, (_, r) => `(${cols.map((_, c) => `$${r * cols.length + c + 1}`).join(', ')})`);
  return `insert into ${TABLE[target]} (${cols.join(', ')}) values ${tuples.join(', ')}`;
}

/**
 * The figure shared by 1–4: chainlog against the plain table (judged) and the hash-only trigger, and a
 * note with the hash-only trigger against the plain table.
 */
function insertFigure(ctx: BenchContext, id: string, title: string, samples: Record<string, number[]>, goal?: Goal, notes: string[] = []): Figure {
  const s = (t: Target) => series(NAMES[t], 'events/s', samples[t]!);
  return figure({
    id,
    title,
    subject: s('chainlog'),
    baselines: [{ series: s('plain'), target: goal }, { series: s('hashed') }],
    notes,
    compareBaselines: true,
    judged: !ctx.quick,
  });
}

/** Per target: the next event number, which is also the seq the baselines store for a one-stream workload. */
const counters = () => ({ chainlog: 1, plain: 1, hashed: 1 }) as Record<Target, number>;

async function withClients<T>(ctx: BenchContext, label: string, n: number, fn: (clients: pg.Client[]) => Promise<T>): Promise<T> {
  const db = await ctx.scratchDatabase(label);
  const clients = await Promise.all(Array.from({ length: n }, () => ctx.connect(db)));
  return fn(clients);
}

/**
 * One client, one event per transaction. Measured twice: as an application runs it (each commit waits
 * for its WAL flush, which on this kind of machine swings by 2x from second to second and dominates the
 * figure), and with synchronous_commit off for the session, which takes the disk out and leaves what
 * chainlog itself costs per transaction. The first is judged; the second says how much of it is ours.
 */
const singleRow: Workload = {
  id: '1',
  title: 'single-row INSERT, autocommit, 1 client',
  run: (ctx) =>
    withClients(ctx, 'w1', 1, async ([client]) => {
      const next = counters();
      const variants: Variant[] = TARGETS.map((t) => ({
        name: t,
        run: async ({ warmup }) => {
          const n = warmup ? Math.ceil(ctx.sizes.singleInserts / 4) : ctx.sizes.singleInserts;
          const text = insertSql(t, 1);
          const { seconds } = await timed(async () => {
            for (let i = 0; i < n; i++) {
              const g = next[t]++;
              // Named: parsed once per session, as a pooled application would run it.
              await client!.query({ name: `w1_${t}`, text, values: rowValues(t, makeEvent('w1', g), g) });
            }
          });
          return n / seconds;
        },
      }));
      const flushed = await alternate(variants, { reps: ctx.reps.light });
      await client!.query('set synchronous_commit = off');
      const unflushed = await alternate(variants, { reps: ctx.reps.light });
      await client!.query('reset synchronous_commit');
      return [
        insertFigure(ctx, '1', singleRow.title, flushed, { kind: 'ratio-at-least', value: 0.9, text: '≥ 0.90×' }),
        insertFigure(ctx, '1', `${singleRow.title}, synchronous_commit = off (no commit flush: the CPU cost alone)`, unflushed),
      ];
    }),
};

const CLIENTS = 8;

/** 8 sessions inserting at once; `hot` puts them all on one stream. */
function concurrent(id: string, title: string, hot: boolean, goal?: Goal, notes: string[] = []): Workload {
  return {
    id,
    title,
    run: (ctx) =>
      withClients(ctx, `w${id}`, CLIENTS, async (clients) => {
        // One stream: one event counter (the baselines' seq must stay unique across the 8 sessions).
        // Separate streams: one counter per session and stream.
        const next = Array.from({ length: hot ? 1 : CLIENTS }, counters);
        const variants: Variant[] = TARGETS.map((t) => ({
          name: t,
          run: async ({ warmup }) => {
            const n = warmup ? Math.ceil(ctx.sizes.concurrentInserts / 4) : ctx.sizes.concurrentInserts;
            const text = insertSql(t, 1);
            const { seconds } = await timed(() =>
              Promise.all(
                clients.map(async (client, k) => {
                  const stream = hot ? `w${id}-hot` : `w${id}-s${k}`;
                  const counter = next[hot ? 0 : k]!;
                  for (let i = 0; i < n; i++) {
                    const g = counter[t]++;
                    await client.query({ name: `w${id}_${t}`, text, values: rowValues(t, makeEvent(stream, g), g) });
                  }
                }),
              ),
            );
            return (n * clients.length) / seconds;
          },
        }));
        const samples = await alternate(variants, { reps: ctx.reps.light });
        return [insertFigure(ctx, id, title, samples, goal, notes)];
      }),
  };
}

const ROWS_PER_STATEMENT = 1000;

const multiRow: Workload = {
  id: '4',
  title: `multi-row INSERT, ${ROWS_PER_STATEMENT} rows per statement, autocommit, 1 client`,
  run: (ctx) =>
    withClients(ctx, 'w4', 1, async ([client]) => {
      const next = counters();
      const variants: Variant[] = TARGETS.map((t) => {
        const text = insertSql(t, ROWS_PER_STATEMENT);
        return {
          name: t,
          run: async ({ warmup }) => {
            const statements = warmup ? 1 : ctx.sizes.multiRowStatements;
            const { seconds } = await timed(async () => {
              for (let s = 0; s < statements; s++) {
                const values: unknown[] = [];
                for (let r = 0; r < ROWS_PER_STATEMENT; r++) {
                  const g = next[t]++;
                  values.push(...rowValues(t, makeEvent('w4', g), g));
                }
                await client!.query({ name: `w4_${t}`, text, values });
              }
            });
            return (statements * ROWS_PER_STATEMENT) / seconds;
          },
        };
      });
      const samples = await alternate(variants, { reps: ctx.reps.light });
      return [insertFigure(ctx, '4', multiRow.title, samples, { kind: 'ratio-at-least', value: 0.6, text: '≥ 0.60×' })];
    }),
};

export const insertWorkloads: Workload[] = [
  singleRow,
  concurrent('2', `single-row INSERT, autocommit, ${CLIENTS} clients, one stream each`, false, {
    kind: 'ratio-at-least',
    value: 0.85,
    text: '≥ 0.85×',
  }),
  concurrent('3', `single-row INSERT, autocommit, ${CLIENTS} clients, all on one stream`, true, undefined, [
    'No target: writers of one stream take turns by design (each holds the stream until it commits), so this is reported as is.',
  ]),
  multiRow,
];
