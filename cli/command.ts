// What every command shares: the global options, exit codes, and turning errors into exit code 2.
import { isoTimeWithOffset } from '../src/client.js';
import { ChainlogError, invalidArgument, toChainlogError } from '../src/errors.js';
import { printable, processOutput, red, writeJson, writeLine, type Output } from './output.js';

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
    // Messages quote what writers wrote (a stream name, a line of a file) and may span lines (the
    // embedded server's startup log): keep the lines, escape everything else a terminal would act on.
    writeLine(out.stderr, red(out.stderr, `chainlog: ${printable(err.message, { multiline: true })}`));
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

// ---------------------------------------------------------------------------------------------------
// Option values the CLI reads itself, so that a bad one is named as the user wrote it.

/** A seq option (--up-to-seq, --from-seq, --to-seq): a whole number, kept as the decimal text given. */
export function seqOption(flag: string, text: string | number | undefined, min = 0): string | undefined {
  if (text === undefined) return undefined;
  const value = String(text).trim();
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < min) {
    throw invalidArgument(`--${flag} must be a seq, a whole number${min > 0 ? ` from ${min}` : ''}, not ${JSON.stringify(String(text))}.`);
  }
  return String(Number(value));
}

/** A whole-number option read as text (yargs would turn "abc" into NaN before we could name it). */
export function integerOption(flag: string, text: string | number | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined;
  const value = String(text).trim();
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
    throw invalidArgument(`--${flag} must be a whole number ${range}, not ${JSON.stringify(String(text))}.`);
  }
  return n;
}

/** What --help says about every time option. */
export const TIME_HELP = 'ISO 8601; UTC unless it has an offset: 2025-01-31, 2025-01-31T09:30, 2025-01-31T09:30+02:00';


/**
 * A time option (--from, --to of search and export): an ISO 8601 date or date and time, read as UTC
 * when it gives no offset, whatever the time zone of this machine or of the database session. Returned
 * with its offset spelled out, to the microsecond, for PostgreSQL to read.
 */
export function timeOption(flag: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const time = isoTimeWithOffset(String(text));
  if (time === undefined) {
    throw invalidArgument(`--${flag} must be an ISO 8601 date or time, e.g. 2025-01-31 or 2025-01-31T09:30:00+02:00, not ${JSON.stringify(String(text))}.`);
  }
  return time;
}

/** One word for a POSIX shell: as is when that is safe, else in single quotes. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
