// What every command shares: the global options, exit codes, and turning errors into exit code 2.
import { ChainlogError, toChainlogError } from '../src/errors.js';
import { processOutput, red, writeJson, writeLine, type Output } from './output.js';

/** Options every command accepts (defined in cli/main.ts). */
export interface GlobalArgs {
  databaseUrl?: string;
  json: boolean;
}

/** The CLI's exit codes (docs: README, CLI section). */
export const EXIT = {
  /** Done; for verify: every chain is intact. */
  OK: 0,
  /** verify: at least one chain is broken (tampered). */
  TAMPERED: 1,
  /** The command could not do its job: bad usage or input, no connection, an error from the database. */
  ERROR: 2,
} as const;

/** Reports an error the way --json or a person expects it. */
export function reportError(out: Output, e: unknown): void {
  const err = e instanceof ChainlogError ? e : toChainlogError(e);
  if (out.json) {
    writeJson(out, { error: { name: err.name, code: err.code, message: err.message, hint: err.hint ?? null } });
  } else {
    writeLine(out.stderr, red(out.stderr, `chainlog: ${err.message}`));
  }
}

/** Wraps a command's run function as a yargs handler: runs it, sets the exit code, never throws. */
export function handler<A extends GlobalArgs>(run: (args: A, out: Output) => Promise<number>) {
  return async (args: A): Promise<void> => {
    const out = processOutput(Boolean(args.json));
    try {
      process.exitCode = await run(args, out);
    } catch (e) {
      reportError(out, e);
      process.exitCode = EXIT.ERROR;
    }
  };
}
