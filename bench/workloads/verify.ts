// Workload 7: chainlog.verify() inside the database, on one stream of `events` events, without and
// with parallel workers. Baselines: reading the same rows without hashing (the floor), and each half
// of verify() alone (recomputing every hash; checking every link), to show where the time goes.
import type pg from 'pg';
import type { BenchContext, Workload } from '../lib/context.js';
import { figure, series } from '../lib/report.js';
import { alternate, timed, type Variant } from '../lib/timing.js';

const STREAM = 'verify';
const ALL = '9223372036854775807';

// verify()'s first half is its own function; its second half is a query inside verify(), mirrored
// here from sql/00005_verify.sql (step 2) so it can be timed alone. Keep the two in step.
const CONTENT_SQL = `select c from chainlog._first_bad_content($1, ${ALL}) c`;
const LINKS_SQL = `select count(*), min(least(l.seq, l.expected_seq)) filter (where l.broken), max(l.seq)
  from (select e.seq, coalesce(lag(e.seq) over w, 0) + 1 as expected_seq,
               e.seq is distinct from coalesce(lag(e.seq) over w, 0) + 1
                 or e.prev_hash is distinct from coalesce(lag(e.hash) over w, chainlog.genesis_hash()) as broken
          from chainlog.events e
         where e.stream = $1 and e.seq <= ${ALL}
        window w as (order by e.seq)) l`;

/**
 * A session that allows `workers` parallel workers for its whole life. Not SET per query: PL/pgSQL
 * caches the plans of verify()'s statements per session, and a cached plan keeps the parallelism it
 * was planned with, whatever the setting says later.
 */
async function sessionWith(ctx: BenchContext, db: string, workers: number): Promise<pg.Client> {
  const client = await ctx.connect(db);
  await client.query(`set max_parallel_workers_per_gather = ${workers}`);
  return client;
}

/**
 * The plans verify() really runs, from auto_explain (nested statements, EXPLAIN ANALYZE without
 * timing), one line per statement that scans the stream: its node types, workers launched and any
 * sort. auto_explain needs a superuser to LOAD; without it there are no plans to report.
 */
async function verifyPlans(client: pg.Client, workers: number): Promise<string[]> {
  // Read the plans after the timed runs: they show the cached plans those runs used.
  const notices: string[] = [];
  const onNotice = (m: { message?: string }) => notices.push(m.message ?? '');
  client.on('notice', onNotice);
  try {
    await client.query(`load 'auto_explain'`);
    await client.query(`set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on;
      set auto_explain.log_analyze = on; set auto_explain.log_timing = off; set auto_explain.log_level = notice`);
    await client.query('select * from chainlog.verify($1)', [STREAM]);
  } catch (e) {
    return [`plans not available: ${(e as Error).message}`];
  } finally {
    await client.query('set auto_explain.log_min_duration = -1').catch(() => {});
    client.off('notice', onNotice);
  }
  const label = (text: string) =>
    text.includes('_content_ok(e, e.seq)) from') || /filter \(where not chainlog\._content_ok/.test(text)
      ? 'content check'
      : text.includes('lag(e.seq)')
        ? 'link check'
        : undefined;
  const out: string[] = [];
  for (const notice of notices) {
    const [head, ...lines] = notice.split('\n');
    const planStart = lines.findIndex((l) => /^\S.*\(.*rows=/.test(l) && !l.startsWith('Query Text'));
    const text = lines.slice(0, planStart).join(' ');
    const which = label(text);
    if (!which || planStart < 0) continue;
    const plan = lines.slice(planStart);
    const nodes = plan
      .filter((l, i) => i === 0 || l.includes('->'))
      .map((l) => l.replace(/^\s*->\s*/, '').replace(/\s*\(cost=.*$/, '').replace(/\s*\(actual.*$/, '').trim());
    const details = plan.map((l) => l.trim().replace(/\s+/g, ' ')).filter((l) => /^(Workers Launched|Sort Method):/.test(l));
    const ms = /duration: ([\d.]+) ms/.exec(head ?? '')?.[1];
    out.push(`${which} (${workers} workers allowed${ms ? `, ${Math.round(Number(ms))} ms` : ''}): ${[nodes.join(' > '), ...details].join('; ')}`);
  }
  return out;
}

export const verifyWorkloads: Workload[] = [
  {
    id: '7',
    title: 'in-database verify()',
    run: async (ctx: BenchContext) => {
      const db = await ctx.dataset('chain');
      const sessions = { 0: await sessionWith(ctx, db, 0), 2: await sessionWith(ctx, db, 2) } as const;
      const n = ctx.sizes.events;
      const verifyAt = (workers: 0 | 2): Variant => ({
        name: `verify w${workers}`,
        run: async () => {
          const { seconds, value } = await timed(() =>
            sessions[workers].query<{ ok: boolean; checked: string }>('select ok, checked from chainlog.verify($1)', [STREAM]),
          );
          const r = value.rows[0]!;
          if (!r.ok || Number(r.checked) !== n) throw new Error(`verify() did not report ${n} intact events: ${JSON.stringify(r)}`);
          return n / seconds;
        },
      });
      const query = (name: string, sql: string, workers: 0 | 2): Variant => ({
        name,
        run: async () => {
          const { seconds } = await timed(() => sessions[workers].query(sql, [STREAM]));
          return n / seconds;
        },
      });
      const samples = await alternate(
        [
          verifyAt(0),
          verifyAt(2),
          // count(hash) cannot be answered from an index: every row is read, nothing is hashed.
          query('scan', 'select count(e.hash) from chainlog.events e where e.stream = $1', 0),
          query('content w0', CONTENT_SQL, 0),
          query('content w2', CONTENT_SQL, 2),
          query('links', LINKS_SQL, 0),
        ],
        { reps: ctx.reps.heavy, onSample: (v, rep, x) => ctx.log(`  7 ${v} #${rep + 1}: ${Math.round(x)} events/s`) },
      );
      const plans = [...(await verifyPlans(sessions[0], 0)), ...(await verifyPlans(sessions[2], 2))];
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
            { series: series("verify()'s content check alone (recompute every hash), 0 workers", 'events/s', samples['content w0']!) },
            { series: series("verify()'s link check alone (seq and prev_hash, in order)", 'events/s', samples.links!) },
          ],
          judged: !ctx.quick,
        }),
        figure({
          id: '7',
          title: `verify() of ${size} events in one stream, max_parallel_workers_per_gather = 2`,
          subject: series('chainlog.verify(), 2 workers', 'events/s', samples['verify w2']!),
          target: goal,
          baselines: [
            { series: series('chainlog.verify(), 0 workers', 'events/s', samples['verify w0']!) },
            { series: series("verify()'s content check alone, 2 workers", 'events/s', samples['content w2']!) },
          ],
          notes: plans,
          judged: !ctx.quick,
        }),
      ];
    },
  },
];
