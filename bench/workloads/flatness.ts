// Workload 6: does the insert rate stay flat?
//   6a: one transaction of `events` events against the same events in 1000-event transactions, and
//       the last 10% of the big transaction against its middle (a per-event cost that grew with the
//       transaction, like a head row updated per event, would show here).
//   6b: the rate when the table already holds N events against an empty table.
// Rows come from bench.src (1000 ready-made events) with INSERT ... SELECT, so the server spends its
// time on inserting, and the client on nothing.
import type pg from 'pg';
import { CONTENT_COLUMNS, type Target } from '../lib/data.js';
import type { BenchContext, Workload } from '../lib/context.js';
import { figure, series, type Figure, type Target as Goal } from '../lib/report.js';
import { alternate, timed, type Variant } from '../lib/timing.js';

const BATCH = 1000; // rows in bench.src, and per statement
const FLAT: Goal = { kind: 'flat', value: 0.1, text: 'within ±10%' };

const rest = CONTENT_COLUMNS.filter((c) => c !== 'stream').map((c) => `s.${c}`).join(', ');
const INSERT: Record<Exclude<Target, 'hashed'>, string> = {
  chainlog: `insert into chainlog.events (${CONTENT_COLUMNS.join(', ')}) select $1, ${rest} from bench.src s`,
  plain: `insert into bench.plain (${CONTENT_COLUMNS.join(', ')}, seq, data_digest, prev_hash, hash)
          select $1, ${rest}, $2::bigint + s.n, s.data_digest, s.prev_hash, s.hash from bench.src s`,
};

type Table = keyof typeof INSERT;

/** Inserts `statements` × 1000 events into a stream; returns each statement's seconds. */
class StreamWriter {
  private seq = 0;
  constructor(
    private readonly client: pg.ClientBase,
    private readonly table: Table,
    private readonly stream: string,
  ) {}

  async write(statements: number): Promise<number[]> {
    const times: number[] = [];
    for (let i = 0; i < statements; i++) {
      const { seconds } = await timed(() =>
        this.client.query({
          name: `w6_${this.table}`,
          text: INSERT[this.table],
          values: this.table === 'chainlog' ? [this.stream] : [this.stream, this.seq],
        }),
      );
      this.seq += BATCH;
      times.push(seconds);
    }
    return times;
  }
}

async function transactionSize(ctx: BenchContext): Promise<Figure[]> {
  const client = await ctx.connect(await ctx.scratchDatabase('w6a'));
  const statements = Math.max(1, Math.round(ctx.sizes.events / BATCH));
  const events = statements * BATCH;
  // A per-event cost that grows with the transaction makes its end slower than its middle. The start is
  // not compared: right after a CHECKPOINT every page first touched pays a full-page write.
  const drift = { middle: [] as number[], last: [] as number[] };
  const variants: Variant[] = (['chainlog', 'plain'] as const).flatMap((table) => {
    const big = new StreamWriter(client, table, 'w6a-one-transaction');
    const small = new StreamWriter(client, table, 'w6a-small-transactions');
    return [
      {
        name: `${table} big`,
        run: async ({ warmup }) => {
          const n = warmup ? Math.max(1, Math.ceil(statements / 10)) : statements;
          const { seconds, value: times } = await timed(async () => {
            await client.query('begin');
            const times = await big.write(n);
            await client.query('commit');
            return times;
          });
          if (table === 'chainlog' && !warmup) {
            const tenth = Math.max(1, Math.floor(n / 10));
            const mid = Math.floor(n / 2);
            const rate = (ts: number[]) => (ts.length * BATCH) / ts.reduce((a, b) => a + b, 0);
            drift.middle.push(rate(times.slice(Math.max(0, mid - tenth), Math.max(1, mid))));
            drift.last.push(rate(times.slice(-tenth)));
          }
          return (n * BATCH) / seconds;
        },
      },
      {
        name: `${table} small`,
        run: async ({ warmup }) => {
          const n = warmup ? Math.max(1, Math.ceil(statements / 10)) : statements;
          const { seconds } = await timed(() => small.write(n)); // autocommit: one transaction each
          return (n * BATCH) / seconds;
        },
      },
    ];
  });
  const samples = await alternate(variants, {
    reps: ctx.reps.heavy,
    beforeEach: () => ctx.checkpoint(client),
    onSample: (v, rep, x) => ctx.log(`  6a ${v} #${rep + 1}: ${Math.round(x)} events/s`),
  });
  const size = events.toLocaleString('en');
  const pair = (table: Table, id: string, label: string, goal?: Goal) =>
    figure({
      id,
      title: `transaction size, ${label}: ${size} events in one transaction against ${statements.toLocaleString('en')} transactions of ${BATCH}`,
      subject: series(`${table}, one transaction`, 'events/s', samples[`${table} big`]!),
      baselines: [{ series: series(`${table}, ${BATCH}-event transactions`, 'events/s', samples[`${table} small`]!), target: goal }],
      judged: !ctx.quick,
    });
  return [
    pair('chainlog', '6a', 'chainlog', FLAT),
    pair('plain', '6a', 'plain table (reference)'),
    figure({
      id: '6a',
      title: `inside chainlog's one ${size}-event transaction: its last 10% of statements against the 10% before its midpoint`,
      subject: series('chainlog, last 10%', 'events/s', drift.last),
      baselines: [{ series: series('chainlog, 40–50%', 'events/s', drift.middle), target: FLAT }],
      judged: !ctx.quick,
    }),
  ];
}

async function tableSize(ctx: BenchContext): Promise<Figure[]> {
  const statements = Math.max(1, Math.round(ctx.sizes.flatSample / BATCH));
  const full = await ctx.connect(await ctx.dataset('table'));
  // An empty table cannot stay empty while it is measured, and chainlog's cannot be emptied: every
  // "empty" sample gets a fresh database cloned from the template, and both sides are alternated.
  let empty: { db: string; client: pg.Client } | undefined;
  const freshEmpty = async () => {
    if (empty) {
      await empty.client.end().catch(() => {});
      await ctx.server.dropDatabase(empty.db);
    }
    const db = await ctx.scratchDatabase('w6b_empty');
    empty = { db, client: await ctx.connect(db) };
    return empty.client;
  };
  const variants: Variant[] = (['chainlog', 'plain'] as const).flatMap((table) => {
    const fullWarm = new StreamWriter(full, table, 'w6b-warm');
    const fullHot = new StreamWriter(full, table, 'w6b-hot');
    // One untimed statement first on both sides, so neither pays for a cold session, plan or cache.
    const sample = async (warm: StreamWriter, hot: StreamWriter, warmup: boolean) => {
      await warm.write(1);
      const n = warmup ? 1 : statements;
      const { seconds } = await timed(() => hot.write(n));
      return (n * BATCH) / seconds;
    };
    return [
      { name: `${table} full`, run: ({ warmup }) => sample(fullWarm, fullHot, warmup) },
      {
        name: `${table} empty`,
        run: async ({ warmup }) => {
          const client = await freshEmpty();
          return sample(new StreamWriter(client, table, 'w6b-warm'), new StreamWriter(client, table, 'w6b-hot'), warmup);
        },
      },
    ];
  });
  const samples = await alternate(variants, {
    reps: ctx.reps.light,
    onSample: (v, rep, x) => ctx.log(`  6b ${v} #${rep + 1}: ${Math.round(x)} events/s`),
  });
  const n = ctx.sizes.tableEvents.toLocaleString('en');
  const pair = (table: Table, label: string, goal?: Goal) =>
    figure({
      id: '6b',
      title: `table size, ${label}: ${ctx.sizes.flatSample.toLocaleString('en')} events in ${BATCH}-row statements into a table holding ${n} events, against an empty table`,
      subject: series(`${table}, table holds ${n}`, 'events/s', samples[`${table} full`]!),
      baselines: [{ series: series(`${table}, empty table`, 'events/s', samples[`${table} empty`]!), target: goal }],
      judged: !ctx.quick,
    });
  return [pair('chainlog', 'chainlog', FLAT), pair('plain', 'plain table (reference)')];
}

export const flatnessWorkloads: Workload[] = [
  {
    id: '6',
    title: 'flatness: transaction size and table size',
    run: async (ctx) => [...(await transactionSize(ctx)), ...(await tableSize(ctx))],
  },
];
