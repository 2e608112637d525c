// chainlog verify: check the hash chains. In the database (chainlog.verify / verify_all) by default;
// with --offline the events are read out and every hash recomputed here, in Node.js, so the check
// does not trust the database's own functions (always so with a checkpoint); with --file an exported
// file is checked, no database.
// Exit code 0: every chain checked is intact; 1: at least one is broken; 2: could not verify.
import { readFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import type { VerifyReport } from '../../src/client.js';
import { parseCheckpoint, type Checkpoint } from '../../src/checkpoint.js';
import { checkpointsFromHeads, isSignedCheckpoint, openSignedCheckpoint, type OpenedCheckpoint } from '../../src/signed-checkpoint.js';
import { invalidArgument, toChainlogError } from '../../src/errors.js';
import { SKIPPED_NAMES, verifyOfflineFile } from '../../src/offline-verify.js';
import { EXIT, handler, integerOption, seqOption, type GlobalArgs } from '../command.js';
import { withDatabase } from '../connection.js';
import { bold, formatTable, green, printable, progress, red, writeJson, writeLine, type Output } from '../output.js';

export interface VerifyArgs extends GlobalArgs {
  stream?: string[];
  upToSeq?: string;
  offline: boolean;
  file?: string;
  format?: 'csv' | 'ndjson';
  fromSeq?: string;
  expectedHead?: string;
  checkpoint?: string;
  checkpoints?: string;
  publicKey?: string;
  workers?: string;
}

/**
 * The most --workers takes. Hashing is bound by the cores, so threads beyond them only add start-up
 * time and memory; a number this large is a typo, refused rather than started. Fixed, not the cores of
 * this machine, so that a script behaves the same wherever it runs.
 */
export const MAX_WORKERS = 64;

const workersOption = (text: string | undefined) => integerOption('workers', text, 0, MAX_WORKERS);

/** The format of an exported file, from its name: .ndjson, .jsonl or .json is NDJSON, anything else CSV. */
export function fileFormat(file: string): 'csv' | 'ndjson' {
  return /\.(nd)?jsonl?$|\.ndjson$/i.test(file) ? 'ndjson' : 'csv';
}

/** Options that only mean something for an exported file (--file). */
const FILE_ONLY = [
  ['format', 'format'],
  ['fromSeq', 'from-seq'],
  ['expectedHead', 'expected-head'],
] as const;

/**
 * Whether the database's events are checked here, in Node.js. A checkpoint always is: it exists to catch
 * someone able to rewrite the database, who could as well replace chainlog.verify() with one that says
 * "intact", or leave the stored hashes matching rows that no longer hash to them.
 */
export function checksOffline(args: Pick<VerifyArgs, 'offline' | 'checkpoint' | 'checkpoints'>): boolean {
  return args.offline || args.checkpoint !== undefined || args.checkpoints !== undefined;
}

/**
 * Refuses options that would be ignored: the file options without --file, --workers on the database's
 * verify(), more than one --stream for a file; and a --workers out of range, before any work starts.
 */
export function checkVerifyArgs(
  args: Pick<VerifyArgs, 'file' | 'offline' | 'workers' | 'checkpoint' | 'checkpoints' | 'publicKey' | 'stream' | (typeof FILE_ONLY)[number][0]>,
): void {
  if (args.file && (args.stream?.length ?? 0) > 1) {
    // Only one would be checked and the others passed over, with exit 0 for streams never verified.
    throw invalidArgument(
      `A --file is verified for one stream: give --stream once with --file, not ${args.stream!.length} times (${args.stream!.map((s) => JSON.stringify(s)).join(', ')}).`,
      'Run `chainlog verify --file FILE --stream STREAM` once per stream.',
    );
  }
  if (args.publicKey !== undefined && args.checkpoints === undefined) {
    throw invalidArgument('--public-key checks the signature of a --checkpoints file; there is none.', 'Add --checkpoints FILE (written by `chainlog checkpoint`), or leave --public-key out.');
  }
  if (args.checkpoint !== undefined) {
    if (args.checkpoints !== undefined) throw invalidArgument('Give --checkpoint or --checkpoints, not both.');
    // A file holds one stream (or --stream names it); the database needs to be told which.
    if (!args.file && (args.stream?.length ?? 0) !== 1) throw invalidArgument('--checkpoint needs exactly one --stream: a checkpoint is one stream\'s head.');
  }
  workersOption(args.workers);
  if (!args.file) {
    const given = FILE_ONLY.filter(([key]) => args[key] !== undefined).map(([, flag]) => `--${flag}`);
    if (given.length) {
      throw invalidArgument(
        `${given.join(' and ')} ${given.length > 1 ? 'apply' : 'applies'} only to an exported file, given with --file: the database has no file to check it against.`,
        `Add --file FILE (chainlog export prints the whole command), or leave ${given.length > 1 ? 'them' : 'it'} out.`,
      );
    }
    if (args.workers !== undefined && !checksOffline(args)) {
      throw invalidArgument('--workers applies only with --offline or --file (or --checkpoint or --checkpoints, which imply --offline): the database\'s verify() uses its own parallel workers.', 'Add --offline, or leave --workers out.');
    }
  }
}

function normalize(r: { stream: string; ok: boolean; checked: number; firstBadSeq: number | string | null; problem: string | null; detail: string | null }): VerifyReport {
  return { ...r, firstBadSeq: r.firstBadSeq === null ? null : String(r.firstBadSeq) };
}

// Streams with a recorded head, and any with events but no head (written around chainlog: verify
// reports them as 'inserted'), as chainlog.verify_all() lists them.
const ALL_STREAMS = `select h.stream from chainlog.streams h union select distinct e.stream from chainlog.events e order by 1`;

/**
 * --checkpoints FILE: the heads `chainlog streams --json` wrote ({"streams": [{"stream", "headSeq",
 * "headHash", ...}]}), or a signed checkpoint `chainlog checkpoint` wrote, checked with --public-key
 * first. Either both a signed file and its public key, or neither: a signed file read without its
 * key, or a key given for an unsigned file, would look checked and not be.
 */
export function readCheckpoints(file: string, publicKeyFile?: string): { checkpoints: Map<string, Checkpoint>; signed?: OpenedCheckpoint } {
  const source = `--checkpoints ${file}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw invalidArgument(`${source}: cannot read it as JSON: ${(e as Error).message}.`, 'Give the file `chainlog streams --json` or `chainlog checkpoint` wrote.');
  }
  if (!isSignedCheckpoint(parsed)) {
    if (publicKeyFile !== undefined) {
      throw invalidArgument(`${source} is not signed, so --public-key has nothing to check.`, 'Sign heads with `chainlog checkpoint --key KEY`, or leave --public-key out.');
    }
    return { checkpoints: checkpointsFromHeads(parsed, source) };
  }
  if (publicKeyFile === undefined) {
    throw invalidArgument(`${source} is a signed checkpoint: give the signer's public key with --public-key, or its heads would be trusted unchecked.`);
  }
  let publicKey: string;
  try {
    publicKey = readFileSync(publicKeyFile, 'utf8');
  } catch (e) {
    throw invalidArgument(`--public-key ${publicKeyFile}: cannot read it: ${(e as Error).message}.`);
  }
  const signed = openSignedCheckpoint(parsed, publicKey, source);
  return { checkpoints: signed.checkpoints, signed };
}

/** What verify found: a report per stream, and the signed checkpoint the heads came from, if any. */
export interface VerifyResult {
  reports: VerifyReport[];
  signed?: OpenedCheckpoint;
}

export async function collectReports(args: VerifyArgs, out: Output): Promise<VerifyResult> {
  if (args.upToSeq !== undefined && !args.file && (args.stream?.length ?? 0) !== 1) {
    throw invalidArgument('--up-to-seq needs exactly one --stream.');
  }
  // The heads kept outside the database, by stream: one given with --checkpoint, or a file of them.
  let checkpoints: Map<string, Checkpoint> | undefined;
  let signed: OpenedCheckpoint | undefined;
  if (args.checkpoints !== undefined) {
    ({ checkpoints, signed } = readCheckpoints(args.checkpoints, args.publicKey));
    if (signed && !out.json) {
      // The key and the time are the file's words (checked by the signature, but still text for a terminal).
      writeLine(out.stderr, `Checkpoint signed by ${printable(signed.key)}: the heads of ${checkpoints.size} stream(s), taken ${printable(signed.takenAt)}.`);
    }
  }
  const checkpoint = args.checkpoint === undefined ? undefined : parseCheckpoint(args.checkpoint, '--checkpoint');

  if (args.file) {
    const timer = progress(out, `verifying ${printable(args.file)}`);
    let rows = 0;
    const upToSeq = seqOption('up-to-seq', args.upToSeq);
    const fromSeq = seqOption('from-seq', args.fromSeq, 1);
    const result = await verifyOfflineFile({
      path: args.file,
      format: args.format ?? fileFormat(args.file),
      stream: args.stream?.[0],
      expectedHead: args.expectedHead ? parseCheckpoint(args.expectedHead, '--expected-head', 0) : undefined,
      checkpoint,
      checkpoints,
      upToSeq: upToSeq === undefined ? undefined : Number(upToSeq),
      fromSeq: fromSeq === undefined ? undefined : Number(fromSeq),
      workers: workersOption(args.workers),
      onProgress: (p) => timer.update((rows = p.rows)),
    }).catch((e: unknown) => {
      throw toChainlogError(e);
    });
    const report = normalize(result);
    if (!out.json) {
      // Without a head the file must end at, nothing says where it ends; a checkpoint covers only up to its seq.
      const unchecked = args.expectedHead ? ''
        : checkpoint || checkpoints ? ' (no --expected-head: events after the checkpoint\'s seq could be cut off the end, or rewritten with their hashes recomputed, and it would still pass)'
          : ' (no --expected-head: the file was checked against itself only; cut short at its end, or rewritten with its hashes recomputed, it would still pass)';
      writeLine(out.stderr, `Read ${timer.done(rows)}${unchecked}.`);
      if (result.skipped) {
        // Read and checked for their form, but nobody vouches for them: say so rather than pass them over.
        // Quoted as JSON, which escapes quotes, backslashes and control characters once; printable() then
        // escapes what JSON leaves raw (DEL, C1, bidi).
        const names = result.skipped.streams.map((n) => printable(JSON.stringify(n))).join(', ');
        writeLine(out.stderr, `Skipped ${result.skipped.rows} row(s) of other streams (${names}${result.skipped.streams.length >= SKIPPED_NAMES ? ', ...' : ''}): well-formed, but not verified.`);
      }
      if (fromSeq === undefined && report.problem === 'deleted' && report.firstBadSeq === '1' && report.checked === 0) {
        writeLine(out.stderr, 'If the file is a partial export (chainlog export --from-seq N), verify it with --from-seq N, as export printed.');
      }
    }
    return { reports: [report], signed };
  }

  const upToSeq = seqOption('up-to-seq', args.upToSeq);
  const workers = workersOption(args.workers);
  const heads = checkpoints ?? new Map(checkpoint === undefined ? [] : [[args.stream![0]!, checkpoint]]);
  const offline = checksOffline(args);
  const reports = await withDatabase(args, out, async (db) => {
    if (!offline && !args.stream?.length) return await db.chainlog.verifyAll();
    // Every stream the database has, and every stream a checkpoint says it had.
    const streams = args.stream?.length
      ? args.stream
      : [...new Set([
          ...(await db.chainlog.db.query<{ stream: string }>(ALL_STREAMS).catch((e: unknown) => Promise.reject(toChainlogError(e)))).rows.map((r) => r.stream),
          ...heads.keys(),
        ])].sort();
    const reports: VerifyReport[] = [];
    for (const stream of streams) {
      if (!offline) {
        reports.push(await db.chainlog.verify({ stream, upToSeq }));
        continue;
      }
      const timer = progress(out, `verifying ${printable(stream)} offline`);
      let rows = 0;
      const report = await db.chainlog.verifyOffline({ stream, upToSeq, checkpoint: heads.get(stream), workers, onProgress: (p) => timer.update((rows = p.rows)) });
      const summary = timer.done(rows);
      if (out.stderr.isTTY && !out.json) writeLine(out.stderr, `${printable(stream)}: read ${summary}`);
      reports.push(report);
    }
    return reports;
  });
  return { reports, signed };
}

/** The verify report as people read it: one row per stream, then a summary line. */
export function formatReports(out: Output, reports: readonly VerifyReport[]): string {
  if (reports.length === 0) return 'No streams to verify: the log is empty.';
  const table = formatTable(reports, [
    { header: 'STREAM', value: (r) => r.stream },
    { header: 'STATUS', value: (r) => (r.ok ? 'intact' : 'TAMPERED'), paint: (text, r) => (r.ok ? green : red)(out.stdout, text) },
    { header: 'CHECKED', value: (r) => r.checked, right: true },
    { header: 'FIRST BAD SEQ', value: (r) => r.firstBadSeq ?? '', right: true },
    { header: 'PROBLEM', value: (r) => r.problem ?? '' },
    { header: 'DETAIL', value: (r) => r.detail ?? '', flex: true },
  ], out.stdout.isTTY ? out.stdout.columns : undefined);
  const broken = reports.filter((r) => !r.ok).length;
  const events = reports.reduce((n, r) => n + r.checked, 0);
  const line = broken
    ? red(out.stdout, `${broken} of ${reports.length} stream(s) TAMPERED.`)
    : green(out.stdout, `All ${reports.length} stream(s) intact (${events} ${events === 1 ? 'event' : 'events'} checked).`);
  return `${table}\n\n${bold(out.stdout, line)}`;
}

export async function runVerify(args: VerifyArgs, out: Output): Promise<number> {
  const { reports, signed } = await collectReports(args, out);
  if (out.json) {
    // A signed checkpoint's key and takenAt, as without --json: an older genuine checkpoint passes too
    // (it covers fewer events), so a caller must be able to see which one was used and how old it is.
    const checkpoint = signed ? { checkpoint: { key: signed.key, takenAt: signed.takenAt } } : {};
    writeJson(out, { ok: reports.every((r) => r.ok), streams: reports, ...checkpoint });
  } else {
    writeLine(out.stdout, formatReports(out, reports));
  }
  return reports.every((r) => r.ok) ? EXIT.OK : EXIT.TAMPERED;
}

export const verifyCommand: CommandModule<GlobalArgs, VerifyArgs> = {
  command: 'verify',
  describe: 'Verify the hash chains. Exit code 0: intact, 1: tampered, 2: could not verify',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('stream', { alias: 's', type: 'string', array: true, describe: 'Stream(s) to verify (default: every stream; with --file: the one stream of the file to check)' })
      .option('up-to-seq', { type: 'string', describe: 'Verify only events 1..N of the one --stream' })
      .option('offline', { type: 'boolean', default: false, describe: 'Recompute every hash in Node.js instead of in the database (always so with --checkpoint or --checkpoints)' })
      .option('file', { alias: 'f', type: 'string', describe: 'Verify an exported file (csv or ndjson) instead of the database' })
      .option('format', { type: 'string', choices: ['csv', 'ndjson'] as const, describe: "With --file: the file's format (default: ndjson for .ndjson, .jsonl, .json, else csv)" })
      .option('from-seq', { type: 'string', describe: 'With --file: the seq the file starts at, for an export made with --from-seq (printed by export)' })
      .option('expected-head', { type: 'string', describe: 'With --file: SEQ:HASH the chain must end at (printed by export); detects a file cut short' })
      .option('checkpoint', {
        type: 'string',
        describe: 'SEQ:HASH of the one --stream (or of the --file\'s stream) recorded earlier: the stream must still hold that event with that hash; catches a chain rewritten with its recorded head. Implies --offline: whoever could rewrite the chain could also replace the database\'s verify()',
      })
      .option('checkpoints', {
        type: 'string',
        describe: 'A file of heads written earlier by `chainlog streams --json`, or signed by `chainlog checkpoint`: each stream in it is checked against its head as with --checkpoint, and every other stream as usual; implies --offline; with --file, the file\'s stream must be in it',
      })
      .option('public-key', { type: 'string', describe: 'With a signed --checkpoints file: the signer\'s public key (PEM); the signature is checked before any head is used' })
      .option('workers', { type: 'string', describe: `With --offline (or a checkpoint) or --file: how many threads recompute hashes, from 0 (none) to ${MAX_WORKERS} (default for large inputs, at most 4: cores - 1 for a file, cores - 2 from the database)` })
      .check((a) => {
        checkVerifyArgs(a as unknown as VerifyArgs);
        return true;
      })
      .example('$0 verify', 'Every stream, in the database')
      .example('$0 verify -s acme --offline', 'Recompute acme\'s chain in Node.js')
      .example('$0 verify -f acme.ndjson --expected-head 1042:9f2c…', 'Check an export')
      .example('$0 verify -s acme --checkpoint 1042:9f2c…', 'Check that acme still holds a head recorded earlier (offline)')
      .example('$0 verify --checkpoints heads.json', 'Every stream, those in heads.json against their heads (offline)')
      .example('$0 verify --checkpoints signed.json --public-key audit.pub.pem', 'The same, against heads signed by `chainlog checkpoint`')
      .example('$0 verify -f acme.ndjson --checkpoints signed.json --public-key audit.pub.pem', 'Check an export against heads signed before it was made') as unknown as Argv<VerifyArgs>,
  handler: handler(runVerify),
};
