// chainlog export: write a stream's events to CSV or NDJSON, with everything needed to verify the file
// offline later (chainlog verify --file). Progress on stderr when it is a terminal; a final rate always.
import type { Argv, CommandModule } from 'yargs';
import type { ExportSummary } from '../../src/client.js';
import { invalidArgument } from '../../src/errors.js';
import { EXIT, handler, seqOption, shellWord, TIME_HELP, timeOption, type GlobalArgs } from '../command.js';
import { withDatabase } from '../connection.js';
import { formatBytes, printable, progress, writeJson, writeLine, type Output } from '../output.js';
import { fileFormat } from './verify.js';

export interface ExportArgs extends GlobalArgs {
  stream: string;
  format?: 'csv' | 'ndjson';
  output?: string;
  fromSeq?: string;
  toSeq?: string;
  from?: string;
  to?: string;
}

/** The format asked for, else the output file's extension, else NDJSON. */
export function exportFormat(args: Pick<ExportArgs, 'format' | 'output'>): 'csv' | 'ndjson' {
  if (args.format) return args.format;
  if (args.output && /\.csv$/i.test(args.output)) return 'csv';
  return 'ndjson';
}

/** How to check an export later: the `chainlog verify` command, or why there is none; and a warning. */
export interface VerifyAdvice {
  command: string | null;
  /** Why there is no command; or, with one, what the export found wrong. */
  note: string | null;
}

/**
 * The `chainlog verify --file` command that checks what was exported: from the seq the file starts at,
 * against the head it must end at (the stream's recorded head when the export reached it, else the last
 * event exported), in the format written. An export filtered by time is checkable only when its events
 * happen to be one unbroken run of seqs; an empty one never is.
 */
export function verifyAdvice(
  args: Pick<ExportArgs, 'fromSeq' | 'toSeq' | 'from' | 'to'>,
  format: 'csv' | 'ndjson',
  file: string | undefined,
  result: ExportSummary,
): VerifyAdvice {
  if (result.rows === 0 || result.lastSeq === null || result.firstSeq === null || result.lastHash === null) {
    return { command: null, note: 'no event was exported, so there is no chain in the file to check' };
  }
  const first = Number(result.firstSeq);
  const last = Number(result.lastSeq);
  const head = Number(result.headSeq);
  const byTime = args.from !== undefined || args.to !== undefined;
  let fromSeq: number;
  let expected: string;
  let note: string | null = null;
  if (byTime) {
    if (last - first + 1 !== result.rows) {
      return {
        command: null,
        note: `the events recorded in that time range are not one unbroken run of seqs (${result.rows} events between seq ${first} and ${last}), so the file is not a chain verify can check. Export a seq range (--from-seq, --to-seq) for that`,
      };
    }
    fromSeq = first;
    expected = `${last}:${result.lastHash}`;
  } else {
    // The seqs asked for, not those found: a missing event is what verify must report. But a partial
    // export's first event is taken on trust, so verify --from-seq refuses a file that starts later as
    // one that lost its first lines: then it is the database that lacks them, which the note says, and
    // the file is checked from where it starts.
    fromSeq = Math.max(1, Number(args.fromSeq ?? 1));
    if (fromSeq > 1 && first > fromSeq) {
      note = `the export starts at seq ${first}, not ${fromSeq}: the database is missing events. Run chainlog verify on the stream`;
      fromSeq = first;
    }
    const toSeq = args.toSeq === undefined ? head : Math.min(head, Number(args.toSeq));
    if (toSeq >= head) {
      expected = `${result.headSeq}:${result.headHash}`;
    } else {
      expected = `${last}:${result.lastHash}`;
      if (last !== toSeq) note ??= `the export ends at seq ${last}, not ${toSeq}: the database is missing events. Run chainlog verify on the stream`;
    }
  }
  const words = ['chainlog', 'verify', '--file', file === undefined ? 'FILE' : shellWord(file)];
  // verify reads the format from the file's name: say it when the name does not, or is not known.
  if (file === undefined || fileFormat(file) !== format) words.push('--format', format);
  if (fromSeq > 1) words.push('--from-seq', String(fromSeq));
  words.push('--expected-head', expected);
  return { command: words.join(' '), note };
}

export async function runExport(args: ExportArgs, out: Output): Promise<number> {
  const toStdout = !args.output || args.output === '-';
  if (toStdout && out.json) throw invalidArgument('--json prints the summary on stdout, so it needs --output FILE.');
  const format = exportFormat(args);
  const fromSeq = seqOption('from-seq', args.fromSeq);
  const toSeq = seqOption('to-seq', args.toSeq);
  const from = timeOption('from', args.from);
  const to = timeOption('to', args.to);
  return withDatabase(args, out, async (db) => {
    const timer = progress(out, `exporting ${printable(args.stream)}`);
    const result = await db.chainlog.export({
      stream: args.stream,
      format,
      output: toStdout ? process.stdout : args.output!,
      fromSeq,
      toSeq,
      from,
      to,
      onProgress: (p) => timer.update(p.rows),
    });
    const summary = timer.done(result.rows);
    const advice = verifyAdvice({ fromSeq, toSeq, from, to }, format, toStdout ? undefined : args.output, result);
    if (out.json) {
      writeJson(out, { stream: args.stream, format, output: args.output, ...result, verify: advice });
    } else {
      // On stderr, so that `chainlog export -s acme > acme.ndjson` keeps the file clean.
      const range = result.firstSeq === null ? '' : `, seq ${result.firstSeq}..${result.lastSeq}`;
      writeLine(out.stderr, `Exported ${summary}${range}, ${formatBytes(result.bytes)} of ${format}${toStdout ? '' : ` to ${printable(args.output!)}`}.`);
      writeLine(out.stderr, `Stream head: ${result.headSeq}:${result.headHash}`);
      if (Number(result.headSeq) > 0) {
        writeLine(out.stderr, `Keep that head outside the database: \`chainlog verify -s ${printable(shellWord(args.stream))} --checkpoint ${result.headSeq}:${result.headHash}\` ` +
          'checks later that the stream still holds it, even if its chain and recorded head were rewritten.');
        // A head kept as plain text is only as safe as the place it is kept; a signed one is not.
        writeLine(out.stderr, 'Or sign every stream\'s head with a key the database\'s administrators do not hold: ' +
          '`chainlog checkpoint --key KEY -o heads.json`, checked later with `chainlog verify --checkpoints heads.json --public-key PUB`.');
      }
      if (advice.command) {
        writeLine(out.stderr, `Check it later with: ${printable(advice.command)}`);
        if (advice.note) writeLine(out.stderr, `Warning: ${advice.note}.`);
      } else {
        writeLine(out.stderr, `No chainlog verify command for this file: ${advice.note}.`);
      }
    }
    return EXIT.OK;
  });
}

export const exportCommand: CommandModule<GlobalArgs, ExportArgs> = {
  command: 'export',
  describe: "Export a stream's events to CSV or NDJSON (verifiable offline with verify --file)",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('stream', { alias: 's', type: 'string', demandOption: true, describe: 'The stream to export' })
      .option('format', { type: 'string', choices: ['csv', 'ndjson'] as const, describe: 'Default: from the --output extension, else ndjson' })
      .option('output', { alias: 'o', type: 'string', describe: 'File to write (default: stdout). If the export fails, a regular file is removed rather than left cut short; a FIFO or device is left alone' })
      .option('from-seq', { type: 'string', describe: 'First seq to export' })
      .option('to-seq', { type: 'string', describe: 'Last seq to export' })
      .option('from', { type: 'string', describe: `Only events recorded at or after this time (${TIME_HELP})` })
      .option('to', { type: 'string', describe: 'Only events recorded before this time (like --from)' })
      .epilogue('Prints the chainlog verify --file command that checks the file later, with the head it must end at. An export filtered by time (--from, --to) gets one only when its events are one unbroken run of seqs.')
      .example('$0 export -s acme -o acme.ndjson', '')
      .example('$0 export -s acme --format csv > acme.csv', '') as unknown as Argv<ExportArgs>,
  handler: handler(runExport),
};
