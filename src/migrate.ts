// Installs or upgrades chainlog's schema: the numbered SQL files in sql/, applied by postgres-migrations.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrate as runMigrations } from 'postgres-migrations';
import { ChainlogError, toChainlogError } from './errors.js';

/** The folder holding chainlog's numbered migrations: `sql/` at the package root, found from src/ or dist/src/. */
export const SQL_DIR = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '..', 'sql'), path.resolve(here, '..', '..', 'sql')];
  return candidates.find((dir) => existsSync(path.join(dir, '00001_schema.sql'))) ?? candidates[0]!;
})();

export interface MigrateOptions {
  /** Connection string; defaults to DATABASE_URL. Ignored when `client` is given. */
  connectionString?: string;
  /** A connected client to run on (not a pool: migrations need one session). */
  client?: pg.Client;
  /** Receives postgres-migrations' progress lines. */
  log?: (message: string) => void;
}

export interface MigrateResult {
  /** Names of the migrations applied by this call (empty when already up to date). */
  applied: string[];
}

// Serializes our pre-step (creating the schema) between concurrent installs; postgres-migrations then
// takes its own advisory lock for the migrations themselves.
const INSTALL_LOCK_KEY = 0x63686c67; // 'chlg'

/**
 * Applies every pending migration. Re-running is a no-op, and concurrent calls wait for each other.
 *
 * postgres-migrations keeps its bookkeeping in an unqualified `migrations` table; we create the
 * `chainlog` schema first and run with `search_path = chainlog`, so that table is `chainlog.migrations`.
 *
 * Throws a ChainlogError: a failed migration keeps the SQLSTATE, class and hint of the statement that
 * failed (LC010 for a database that is not UTF8, for instance), and names the migration file.
 */
export async function migrate(options: MigrateOptions = {}): Promise<MigrateResult> {
  const ownClient = options.client
    ? undefined
    : new pg.Client({ connectionString: options.connectionString ?? process.env.DATABASE_URL });
  const client = options.client ?? ownClient!;
  if (ownClient) {
    try {
      await ownClient.connect();
    } catch (e) {
      throw toChainlogError(e);
    }
  }
  // postgres-migrations rethrows a failed migration as a new Error that keeps only the message. Its
  // queries go through this wrapper, which remembers the server's own error (SQLSTATE, hint, detail).
  let serverError: unknown;
  const recording = {
    query: (...args: unknown[]) =>
      (Reflect.apply(client.query, client, args) as Promise<unknown>).catch((e: unknown) => {
        serverError ??= e; // the first: what follows (ROLLBACK, unlock) is clean-up
        throw e;
      }),
  } as unknown as pg.Client;
  try {
    const previousSearchPath = (await client.query<{ search_path: string }>('show search_path')).rows[0]!.search_path;
    try {
      await client.query('select pg_advisory_lock($1)', [INSTALL_LOCK_KEY]);
      await client.query('create schema if not exists chainlog');
      await client.query('set search_path = chainlog');
      // Later migrations may alter chainlog's own tables; that DDL is the documented maintenance path.
      await client.query("set chainlog.maintenance = 'on'");
      const applied = await runMigrations({ client: recording }, SQL_DIR, { logger: options.log });
      return { applied: applied.map((m) => m.name) };
    } finally {
      await client.query('reset chainlog.maintenance').catch(() => {});
      await client.query(`select set_config('search_path', $1, false)`, [previousSearchPath]).catch(() => {});
      await client.query('select pg_advisory_unlock($1)', [INSTALL_LOCK_KEY]).catch(() => {});
    }
  } catch (e) {
    throw migrationError(e, serverError);
  } finally {
    if (ownClient) await ownClient.end().catch(() => {});
  }
}

/** What went wrong, as a ChainlogError, from postgres-migrations' message and the server's error. */
function migrationError(e: unknown, serverError: unknown): ChainlogError {
  const message = e instanceof Error ? e.message : String(e);
  const failed = /An error occurred running '([^']+)'/.exec(message)?.[1];
  if (failed && serverError !== undefined) {
    const mapped = toChainlogError(serverError);
    mapped.message = `migration ${fileOf(failed)} failed and was rolled back; no later migration ran: ${mapped.message}`;
    return mapped;
  }
  const changed = /Hashes don't match for migrations '([^']*)'/.exec(message)?.[1];
  if (changed !== undefined) {
    const hint =
      'This database was installed from a chainlog whose migration files differ from these. Before the first ' +
      'release the files change in place: install into a new database (docs/SQL.md).';
    return new ChainlogError(`the applied migrations ${changed.split(',').join(', ')} differ from this chainlog's files. ${hint}`, {
      code: 'CHAINLOG_MIGRATIONS_CHANGED',
      hint,
      cause: e,
    });
  }
  return toChainlogError(e);
}

/** postgres-migrations names a migration without its number and extension ('schema'); users know the file. */
function fileOf(name: string): string {
  const file = readdirSync(SQL_DIR).find((f) => f.replace(/^\d+[-_]/, '').replace(/\.sql$/, '') === name);
  return file ?? name;
}
