// chainlog migrate: install chainlog into the database, or upgrade it. Runs migrate() from src/migrate.ts.
import type { Argv, CommandModule } from 'yargs';
import { migrate } from '../../src/migrate.js';
import { EXIT, handler, type GlobalArgs } from '../command.js';
import { withDatabase } from '../connection.js';
import { printable, writeJson, writeLine, type Output } from '../output.js';

export type MigrateArgs = GlobalArgs;

export async function runMigrate(args: MigrateArgs, out: Output): Promise<number> {
  return withDatabase(args, out, async (db) => {
    // The server's notices (an install without the DDL guard says so) go to stderr, also with --json.
    const onNotice = (message: string) =>
      writeLine(out.stderr, printable(message.startsWith('chainlog: ') ? message : `chainlog: ${message}`));
    const { applied } = await migrate({ connectionString: db.url, onNotice });
    if (out.json) writeJson(out, { applied });
    else if (applied.length === 0) writeLine(out.stdout, 'chainlog is up to date: no migration to apply.');
    else writeLine(out.stdout, `Applied ${applied.length} migration(s):\n${applied.map((m) => `  ${m}`).join('\n')}`);
    return EXIT.OK;
  }, { migrate: false });
}

export const migrateCommand: CommandModule<GlobalArgs, MigrateArgs> = {
  command: 'migrate',
  describe: 'Install chainlog into the database, or upgrade it (idempotent)',
  builder: (y: Argv<GlobalArgs>) => y,
  handler: handler(runMigrate),
};
