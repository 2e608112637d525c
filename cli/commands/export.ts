// chainlog export: write a stream's events to CSV or NDJSON, with everything needed to verify the file
// offline later (chainlog verify --file). Progress on stderr when it is a terminal; a final rate always.
import type { Argv, CommandModule } from 'yargs';
import { invalidArgument } from '../../src/errors.js';
import { EXIT, handler, type GlobalArgs } from '../command.js';
import { openDatabase } from '../connection.js';
import { formatBytes, progress, writeJson, writeLine, type Output } from '../output.js';

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

export async function runExport(args: ExportArgs, out: Output): Promise<number> {
  const toStdout = !args.output || args.output === '-';
  if (toStdout && out.json) throw invalidArgument('--json prints the summary on stdout, so it needs --output FILE.');
  const format = exportFormat(args);
  const db = await openDatabase(args, out);
  try {
    const timer = progress(out, `exporting ${args.stream}`);
    const result = await db.chainlog.export({
      stream: args.stream,
      format,
      output: toStdout ? process.stdout : args.output!,
      fromSeq: args.fromSeq,
      toSeq: args.toSeq,
      from: args.from,
      to: args.to,
      onProgress: (p) => timer.update(p.rows),
    });
    const summary = timer.done(result.rows);
    if (out.json) {
      writeJson(out, { stream: args.stream, format, output: args.output, ...result });
    } else {
      // On stderr, so that `chainlog export -s acme > acme.ndjson` keeps the file clean.
      writeLine(out.stderr, `Exported ${summary}, ${formatBytes(result.bytes)} of ${format}${toStdout ? '' : ` to ${args.output}`}.`);
      writeLine(out.stderr, `Head: ${result.headSeq}:${result.headHash}`);
      writeLine(out.stderr, `Check it later with: chainlog verify --file ${toStdout ? 'FILE' : args.output} --expected-head ${result.headSeq}:${result.headHash}`);
    }
    return EXIT.OK;
  } finally {
    await db.close();
  }
}

export const exportCommand: CommandModule<GlobalArgs, ExportArgs> = {
  command: 'export',
  describe: "Export a stream's events to CSV or NDJSON (verifiable offline with verify --file)",
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('stream', { alias: 's', type: 'string', demandOption: true, describe: 'The stream to export' })
      .option('format', { type: 'string', choices: ['csv', 'ndjson'] as const, describe: 'Default: from the --output extension, else ndjson' })
      .option('output', { alias: 'o', type: 'string', describe: 'File to write (default: stdout)' })
      .option('from-seq', { type: 'string', describe: 'First seq to export' })
      .option('to-seq', { type: 'string', describe: 'Last seq to export' })
      .option('from', { type: 'string', describe: 'Only events recorded at or after this time (ISO 8601)' })
      .option('to', { type: 'string', describe: 'Only events recorded before this time (ISO 8601)' })
      .example('$0 export -s acme -o acme.ndjson', '')
      .example('$0 export -s acme --format csv > acme.csv', '') as unknown as Argv<ExportArgs>,
  handler: handler(runExport),
};
