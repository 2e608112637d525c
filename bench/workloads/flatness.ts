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
import { pairwiseRatios, summarize } from '../lib/stats.js';
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

  /** One more statement under EXPLAIN (ANALYZE, BUFFERS, WAL): where its time and pages went. */
  async explain(): Promise<StatementProfile> {
    const { rows } = await this.client.query(`explain (analyze, buffers, wal, format json) ${INSERT[this.table]}`,
      this.table === 'chainlog' ? [this.stream] : [this.stream, this.seq]);
    this.seq += BATCH;
    const [out] = rows[0]['QUERY PLAN'] as Array<{ Plan: Record<string, number>; 'Execution Time': number; Triggers?: Array<{ Time: number }> }>;
    const plan = out!.Plan;
    return {
      ms: out!['Execution Time'],
      triggerMs: (out!.Triggers ?? []).reduce((sum, t) => sum + t.Time, 0),
      hit: plan['Shared Hit Blocks']!,
      read: plan['Shared Read Blocks']!,
      dirtied: plan['Shared Dirtied Blocks']!,
      fpi: plan['WAL FPI']!,
    };
  }
}

interface StatementProfile {
  ms: number;
  /** Time in row triggers (chainlog's chain trigger; none on the plain table). */
  triggerMs: number;
  /** Shared buffers found in the cache, read in, and first changed by the statement. */
  hit: number;
  read: number;
  dirtied: number;
  /** Full-page images written to the WAL: pages first changed since the last checkpoint. */
  fpi: number;
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
  const walPerEvent: Record<string, number[]> = {};
  const profiles: Record<string, StatementProfile[]> = {};
  const variants: Variant[] = (['chainlog', 'plain'] as const).flatMap((table) => {
    const fullWarm = new StreamWriter(full, table, 'w6b-warm');
    const fullHot = new StreamWriter(full, table, 'w6b-hot');
    // One untimed statement first on both sides, so neither pays for a cold session, plan or cache.
    // The WAL written during the timed part is recorded too: into a large table's indexes, each
    // event's keys land on pages not yet written since the last checkpoint, and each such page's
    // first change writes the whole page to the WAL (full_page_writes).
    const sample = async (name: string, client: pg.ClientBase, warm: StreamWriter, hot: StreamWriter, warmup: boolean) => {
      await warm.write(1);
      const n = warmup ? 1 : statements;
      const lsn = async () => (await client.query<{ lsn: string }>('select pg_catalog.pg_current_wal_insert_lsn()::text as lsn')).rows[0]!.lsn;
      const start = await lsn();
      const { seconds } = await timed(() => hot.write(n));
      const { rows } = await client.query<{ bytes: string }>('select pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_insert_lsn(), $1)::text as bytes', [start]);
      if (!warmup) {
        const perEvent = Number(rows[0]!.bytes) / (n * BATCH);
        (walPerEvent[name] ??= []).push(perEvent);
        const profile = await hot.explain();
        (profiles[name] ??= []).push(profile);
        ctx.log(`  6b ${name}: ${Math.round(perEvent)} B of WAL per event; one more statement: ${JSON.stringify(profile)}`);
      }
      return (n * BATCH) / seconds;
    };
    return [
      { name: `${table} full`, run: ({ warmup }) => sample(`${table} full`, full, fullWarm, fullHot, warmup) },
      {
        name: `${table} empty`,
        run: async ({ warmup }) => {
          const client = await freshEmpty();
          return sample(`${table} empty`, client, new StreamWriter(client, table, 'w6b-warm'), new StreamWriter(client, table, 'w6b-hot'), warmup);
        },
      },
    ];
  });
  const samples = await alternate(variants, {
    reps: ctx.reps.light,
    onSample: (v, rep, x) => ctx.log(`  6b ${v} #${rep + 1}: ${Math.round(x)} events/s`),
  });
  const n = ctx.sizes.tableEvents.toLocaleString('en');
  // Whether chainlog's own cost grows with the table: its speed against the plain table's, pair by pair
  // (the four variants of a round run back to back), into the full table and into the empty one.
  const vsPlain = (size: 'full' | 'empty') =>
    `${summarize(pairwiseRatios(samples[`chainlog ${size}`]!, samples[`plain ${size}`]!)).median.toFixed(2)}×`;
  const againstPlain = `chainlog ÷ plain table (median of pairs from the same round): ${vsPlain('full')} into the table holding ${n}, ${vsPlain('empty')} into the empty one`;
  // The median of each EXPLAIN figure over a variant's samples.
  const profile = (name: string) => {
    const m = (key: keyof StatementProfile) => summarize((profiles[name] ?? []).map((p) => p[key])).median;
    return `${m('ms').toFixed(1)} ms (${m('triggerMs').toFixed(1)} ms in the trigger), buffers hit ${Math.round(m('hit'))}, ` +
      `read ${Math.round(m('read'))}, first changed ${Math.round(m('dirtied'))}, full-page images ${Math.round(m('fpi'))}`;
  };
  const wal = (name: string) => `${Math.round(summarize(walPerEvent[name] ?? []).median).toLocaleString('en')} B`;
  const pair = (table: Table, label: string, goal?: Goal) =>
    figure({
      id: '6b',
      title: `table size, ${label}: ${ctx.sizes.flatSample.toLocaleString('en')} events in ${BATCH}-row statements into a table holding ${n} events, against an empty table`,
      subject: series(`${table}, table holds ${n}`, 'events/s', samples[`${table} full`]!),
      baselines: [{ series: series(`${table}, empty table`, 'events/s', samples[`${table} empty`]!), target: goal }],
      notes: [`WAL written per event (median): ${wal(`${table} full`)} into the table holding ${n}, ${wal(`${table} empty`)} into the empty one`,
        `one more ${BATCH}-row statement after each sample, under EXPLAIN (ANALYZE, BUFFERS, WAL), medians: ` +
          `into the table holding ${n} ${profile(`${table} full`)}; into the empty one ${profile(`${table} empty`)}`,
        ...(table === 'chainlog' ? [againstPlain] : [])],
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
