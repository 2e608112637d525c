// Workload 8: verifying a stream outside the database, in Node (src/offline-verify.ts), and what
// bounds it on this machine: raw SHA-256 throughput of node:crypto and @noble/hashes on event-sized
// inputs, and reading the same rows out of PostgreSQL without looking at them.
import { createHash, hash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { SkipWorkload, type BenchContext, type Workload } from '../lib/context.js';
import { copyOut } from '../lib/copyout.js';
import { figure, series, type Figure } from '../lib/report.js';
import { alternate, timed, type Variant } from '../lib/timing.js';

const STREAM = 'verify';
const INPUT_BYTES = 350;

/** Raw SHA-256 variants: hashes/s over `count` distinct-looking 350-byte inputs. */
function hashVariants(count: number): Variant[] {
  const inputs = Array.from({ length: 1024 }, () => randomBytes(INPUT_BYTES));
  /** `fn` returns the digest's first byte, so that its result is used and the call cannot be dropped. */
  const loop = (name: string, fn: (b: Buffer) => number): Variant => ({
    name,
    run: async ({ warmup }) => {
      const n = warmup ? Math.ceil(count / 10) : count;
      const { seconds } = await timed(async () => {
        let sink = 0;
        for (let i = 0; i < n; i++) sink ^= fn(inputs[i & 1023]!);
        return sink; // used, so the calls cannot be optimized away
      });
      return n / seconds;
    },
  });
  return [
    loop('node:crypto hash()', (b) => hash('sha256', b, 'buffer')[0]!),
    // The form the verifier checks with: the digest as a latin1 string, no Buffer per call.
    loop('node:crypto hash(), latin1 string', (b) => hash('sha256', b, 'binary').charCodeAt(0)),
    loop('node:crypto createHash()', (b) => createHash('sha256').update(b).digest()[0]!),
    loop('@noble/hashes sha256()', (b) => nobleSha256(b)[0]!),
  ];
}

async function loadVerifyOffline() {
  try {
    const { verifyOffline, verifyOfflineFile, defaultContentWorkers } = await import('../../src/offline-verify.js');
    const { exportEvents } = await import('../../src/export.js');
    return { verifyOffline, verifyOfflineFile, defaultContentWorkers, exportEvents };
  } catch (e) {
    throw new SkipWorkload(`src/offline-verify.js cannot be loaded yet (${(e as Error).message.split('\n')[0]})`);
  }
}

export const offlineWorkloads: Workload[] = [
  {
    id: '8',
    title: 'offline verify in Node, and the SHA-256 throughput that bounds it',
    run: async (ctx: BenchContext): Promise<Figure[]> => {
      let lib: Awaited<ReturnType<typeof loadVerifyOffline>> | undefined;
      let skipped: string | undefined;
      try {
        lib = await loadVerifyOffline();
      } catch (e) {
        if (!(e instanceof SkipWorkload)) throw e;
        skipped = e.message;
        ctx.log(`  8: offline verify skipped: ${e.message}`);
      }
      const client = await ctx.connect(await ctx.dataset('chain'));
      const n = ctx.sizes.events;
      const variants: Variant[] = [...hashVariants(ctx.sizes.hashInputs)];
      // The worker threads each verifier starts by default here (none measured when the library is missing).
      const defaults = { database: lib?.defaultContentWorkers('database') ?? 0, file: lib?.defaultContentWorkers('file') ?? 0 };
      const otherChoice = (source: 'database' | 'file') => (defaults[source] === 0 ? 1 : 0);
      const workersText = (n: number) => (n === 0 ? 'the hashes on the main thread' : `the hashes on ${n} worker thread(s)`);
      // What verifyOffline() reads: every column (table order), in chain order.
      const streamRows = `select * from chainlog.events where stream = '${STREAM}' order by seq, id`;
      variants.push({
        name: 'read',
        run: async () => {
          const { seconds, value } = await timed(() =>
            copyOut(client, `copy (${streamRows}) to stdout (format binary)`),
          );
          if (value.rows !== n) throw new Error(`read ${value.rows} rows, expected ${n}`);
          return n / seconds;
        },
      });
      // The same rows written by the server to /dev/null: what producing them costs the server alone,
      // without Node reading them. Needs the right to write server files (superuser or
      // pg_write_server_files), which the embedded server's user has; skipped where it fails.
      const serverRead = `copy (${streamRows}) to '/dev/null' (format binary)`;
      const serverReadProbe = await client.query(`copy (select * from chainlog.events limit 0) to '/dev/null' (format binary)`).then(
        () => undefined,
        (e: Error) => e.message,
      );
      if (serverReadProbe === undefined) {
        variants.push({
          name: 'server read',
          run: async () => {
            const { seconds, value } = await timed(() => client.query(serverRead));
            if (value.rowCount !== n) throw new Error(`the server wrote ${value.rowCount} rows, expected ${n}`);
            return n / seconds;
          },
        });
      } else {
        ctx.log(`  8: the server-side read (COPY TO '/dev/null') is not measured: ${serverReadProbe}`);
      }
      // The auditor's case: an exported CSV file, verified with the default worker threads and without.
      const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-bench-offline-'));
      const csv = path.join(dir, 'events.csv');
      let samples: Awaited<ReturnType<typeof alternate>>;
      try {
        if (lib) {
          const run = lib;
          await run.exportEvents({ db: client, stream: STREAM, format: 'csv', output: csv });
          // Each run must find every event intact: a verifier that stopped early would look fast.
          const verifying = (name: string, what: string, verify: () => Promise<{ ok: boolean; checked: number }>): Variant => ({
            name,
            run: async () => {
              const { seconds, value } = await timed(verify);
              if (!value.ok || value.checked !== n) throw new Error(`${what} did not report ${n} intact events: ${JSON.stringify(value)}`);
              return n / seconds;
            },
          });
          // The default against the other choice: no worker where it starts some, one where it starts none.
          variants.unshift(
            verifying('offline', 'verifyOffline()', () => run.verifyOffline({ db: client, stream: STREAM })),
            verifying('offline alt', 'verifyOffline()', () => run.verifyOffline({ db: client, stream: STREAM, workers: otherChoice('database') })),
            verifying('file', 'verifyOfflineFile()', () => run.verifyOfflineFile({ path: csv })),
            verifying('file alt', 'verifyOfflineFile()', () => run.verifyOfflineFile({ path: csv, workers: otherChoice('file') })),
          );
        }
        samples = await alternate(variants, {
          reps: ctx.reps.heavy,
          onSample: (v, rep, x) => ctx.log(`  8 ${v} #${rep + 1}: ${Math.round(x)}/s`),
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const hashes = hashVariants(0).map((v) => ({
        series: series(`${v.name}, ${INPUT_BYTES}-byte inputs`, 'hashes/s', samples[v.name]!),
        ratio: false,
      }));
      const read = { series: series('read the same rows: binary COPY TO STDOUT into Node, unparsed (floor)', 'events/s', samples.read!) };
      // The server's share of that floor: the same COPY written to /dev/null, no client involved.
      const serverSide = samples['server read']
        ? [{ series: series("the server alone: the same binary COPY to '/dev/null', no client", 'events/s', samples['server read']) }]
        : [];
      const size = n.toLocaleString('en');
      if (!lib) {
        return [
          figure({
            id: '8',
            title: 'raw SHA-256 throughput and read floor (verifyOffline() not measured)',
            subject: hashes[0]!.series,
            baselines: [...hashes.slice(1), { series: read.series, ratio: false }, ...serverSide.map((b) => ({ ...b, ratio: false }))],
            notes: [`verifyOffline() not measured: ${skipped}`],
            judged: false,
          }),
        ];
      }
      return [
        figure({
          id: '8',
          title: `verifyOffline() of ${size} events in one stream (node:crypto)`,
          subject: series('chainlog verifyOffline()', 'events/s', samples.offline!),
          target: { kind: 'at-least', value: 500_000, text: '≥ 0.5M events/s' },
          baselines: [read, ...serverSide, ...hashes],
          notes: [
            'Each event takes two SHA-256 computations (its data digest and its canonical bytes), so hashing alone caps verification at half the hash rate.',
            `By default the hashes are recomputed on ${defaults.database} worker thread(s) here from the database (two fewer than the cores, at most 4) and on ${defaults.file} from a file (one fewer), while the main thread reads, encodes and checks the links.`,
          ],
          judged: !ctx.quick,
        }),
        figure({
          id: '8',
          title: `verifyOffline() of ${size} events: the default (${workersText(defaults.database)}) against workers: ${otherChoice('database')}`,
          subject: series(`verifyOffline(), default (workers: ${defaults.database})`, 'events/s', samples.offline!),
          baselines: [{ series: series(`verifyOffline(), workers: ${otherChoice('database')}`, 'events/s', samples['offline alt']!) }],
          judged: false,
        }),
        figure({
          id: '8',
          title: `verifyOfflineFile() of ${size} events exported as CSV (no database): the default (${workersText(defaults.file)}) against workers: ${otherChoice('file')}`,
          subject: series(`verifyOfflineFile(), default (workers: ${defaults.file})`, 'events/s', samples.file!),
          baselines: [{ series: series(`verifyOfflineFile(), workers: ${otherChoice('file')}`, 'events/s', samples['file alt']!) }],
          judged: false,
        }),
      ];
    },
  },
];
