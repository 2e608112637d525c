// Workload 7: chainlog.verify() inside the database, on one stream of `events` events, without and
// with parallel workers. Baselines: reading the same rows without hashing (the floor), and each half
// of verify() alone (recomputing every hash; checking every link), to show where the time goes.
import type pg from 'pg';
import type { BenchContext, Workload } from '../lib/context.js';
import { figure, series } from '../lib/report.js';
import { alternate, timed, type Variant } from '../lib/timing.js';

const STREAM = 'verify';

async function withWorkers<T>(client: pg.ClientBase, workers: number, fn: () => Promise<T>): Promise<T> {
  await client.query(`set max_parallel_workers_per_gather = ${workers}`);
  try {
    return await fn();
  } finally {
    await client.query('reset max_parallel_workers_per_gather');
  }
}

// The two halves of verify() (sql/00005_verify.sql), as verify() runs them for a whole stream.
const CONTENT_SQL = `select min(e.seq) from chainlog.events e
  where e.stream = $1 and e.seq <= 9223372036854775807 and not chainlog._content_ok(e, e.seq)`;
const LINKS_SQL = `select count(*), min(least(l.seq, l.expected_seq)) filter (where l.broken), max(l.seq)
  from (select e.seq, coalesce(lag(e.seq) over w, 0) + 1 as expected_seq,
               e.seq is distinct from coalesce(lag(e.seq) over w, 0) + 1
                 or e.prev_hash is distinct from coalesce(lag(e.hash) over w, chainlog.genesis_hash()) as broken
          from chainlog.events e
         where e.stream = $1 and e.seq <= 9223372036854775807
        window w as (order by e.seq, e.id)) l`;

/** The plan's node types in one line, from EXPLAIN ANALYZE (what verify()'s own query gets planned as). */
async function planShape(client: pg.ClientBase, sql: string, workers: number): Promise<string> {
  return withWorkers(client, workers, async () => {
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`explain (analyze, costs off, timing off, summary off) ${sql}`, [STREAM]);
    const lines = rows.map((r) => r['QUERY PLAN']);
    const nodes = lines
      .filter((l, i) => i === 0 || l.includes('->'))
      .map((l) => l.replace(/^\s*->\s*/, '').replace(/\s*\(actual.*$/, '').replace(/ on events e$/, '').trim());
    const details = lines
      .map((l) => l.trim())
      .filter((l) => /^(Workers Launched|Sort Method):/.test(l))
      .map((l) => l.replace(/\s+/g, ' '));
    return [nodes.join(' > '), ...details].join('; ');
  });
}

export const verifyWorkloads: Workload[] = [
  {
    id: '7',
    title: 'in-database verify()',
    run: async (ctx: BenchContext) => {
      const client = await ctx.connect(await ctx.dataset('chain'));
      const n = ctx.sizes.events;
      const verifyAt = (workers: number): Variant => ({
        name: `verify w${workers}`,
        run: () =>
          withWorkers(client, workers, async () => {
            const { seconds, value } = await timed(() =>
              client.query<{ ok: boolean; checked: string }>('select ok, checked from chainlog.verify($1)', [STREAM]),
            );
            const r = value.rows[0]!;
            if (!r.ok || Number(r.checked) !== n) throw new Error(`verify() did not report ${n} intact events: ${JSON.stringify(r)}`);
            return n / seconds;
          }),
      });
      const query = (name: string, sql: string): Variant => ({
        name,
        run: () =>
          withWorkers(client, 0, async () => {
            const { seconds } = await timed(() => client.query(sql, [STREAM]));
            return n / seconds;
          }),
      });
      const samples = await alternate(
        [
          verifyAt(0),
          verifyAt(2),
          // count(hash) cannot be answered from an index: every row is read, nothing is hashed.
          query('scan', 'select count(e.hash) from chainlog.events e where e.stream = $1'),
          query('content', CONTENT_SQL),
          query('links', LINKS_SQL),
        ],
        { reps: ctx.reps.heavy, onSample: (v, rep, x) => ctx.log(`  7 ${v} #${rep + 1}: ${Math.round(x)} events/s`) },
      );
      const plans = {
        content: await planShape(client, CONTENT_SQL, 2),
        links: await planShape(client, LINKS_SQL, 2),
      };
      const size = n.toLocaleString('en');
      const goal = { kind: 'at-least', value: 1_000_000, text: '≥ 1M events/s' } as const;
      return [
        figure({
          id: '7',
          title: `verify() of ${size} events in one stream, max_parallel_workers_per_gather = 0`,
          subject: series('chainlog.verify(), 0 workers', 'events/s', samples['verify w0']!),
          target: goal,
          baselines: [
            { series: series('read the same rows, no hashing (floor)', 'events/s', samples.scan!) },
            { series: series("verify()'s content check alone (recompute every hash)", 'events/s', samples.content!) },
            { series: series("verify()'s link check alone (seq and prev_hash, in order)", 'events/s', samples.links!) },
          ],
          notes: [
            `content check, planned with 2 workers allowed: ${plans.content}`,
            `link check, planned with 2 workers allowed: ${plans.links}`,
          ],
          judged: !ctx.quick,
        }),
        figure({
          id: '7',
          title: `verify() of ${size} events in one stream, max_parallel_workers_per_gather = 2`,
          subject: series('chainlog.verify(), 2 workers', 'events/s', samples['verify w2']!),
          target: goal,
          baselines: [{ series: series('chainlog.verify(), 0 workers', 'events/s', samples['verify w0']!) }],
          judged: !ctx.quick,
        }),
      ];
    },
  },
];
