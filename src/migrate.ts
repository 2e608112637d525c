// Installs or upgrades chainlog's schema: the numbered SQL files in sql/, applied by postgres-migrations.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrate as runMigrations } from 'postgres-migrations';
import { ChainlogError, ChainlogPermissionError, toChainlogError } from './errors.js';

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
  /** Receives postgres-migrations' progress lines, and the server's notices when `onNotice` is not given. */
  log?: (message: string) => void;
  /**
   * Receives what the migrations tell the installer: chainlog's own NOTICEs (such as "chainlog: app may
   * not create event triggers, ..." for a role that is not a superuser) and any WARNING, prefixed
   * `WARNING: `. Defaults to `log`.
   */
  onNotice?: (message: string) => void;
}

export interface MigrateResult {
  /** Names of the migrations applied by this call (empty when already up to date). */
  applied: string[];
}

// postgres-migrations' own advisory lock key (with-lock.js), beyond 2^53 so passed as text. migrate()
// holds it for the whole run, not only while postgres-migrations runs the files: it serializes our own
// steps (checking and preparing the schema) between concurrent installs, and makes an application's
// postgres-migrations run in the same database wait while our temporary `migrations` table (below)
// is there to mislead it. postgres-migrations takes it again inside; advisory locks stack.
const POSTGRES_MIGRATIONS_LOCK_KEY = '-8525285245963000605';

/**
 * Applies every pending migration. Re-running is a no-op, and concurrent calls wait for each other.
 *
 * postgres-migrations keeps its bookkeeping in an unqualified `migrations` table and decides that it
 * exists by looking for a table of that name in any schema. chainlog keeps it in
 * `chainlog.applied_migrations`, with a view `chainlog.migrations` over it for postgres-migrations,
 * and runs the files with `search_path = chainlog, pg_temp`. So an application's own `migrations`
 * table (postgres-migrations, TypeORM, Laravel) and chainlog's do not mistake each other.
 *
 * Throws a ChainlogError: a failed migration keeps the SQLSTATE, class and hint of the statement that
 * failed (LC010 for a database that is not UTF8, for instance), and names the migration file.
 * CHAINLOG_SCHEMA_TAKEN when the `chainlog` schema belongs to another role or holds objects chainlog did
 * not create; CHAINLOG_MIGRATIONS_NEWER when a newer chainlog installed this database.
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
  const onNotice = options.onNotice ?? options.log;
  const forwardNotice = (notice: Notice) => {
    const text = noticeText(notice);
    if (onNotice && text !== undefined) onNotice(text);
  };
  client.on('notice', forwardNotice);
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
    // First of all: until now names resolve through the search_path the database's owner may have set
    // (ALTER DATABASE ... SET search_path), so a function or operator of theirs named like a built-in
    // would run with the installing role's rights. From here on only pg_catalog is searched, and
    // every function is also written with its schema.
    await client.query('set search_path = pg_catalog, pg_temp');
    let locked = false;
    let marker = false;
    try {
      await client.query('select pg_catalog.pg_advisory_lock($1::pg_catalog.int8)', [POSTGRES_MIGRATIONS_LOCK_KEY]);
      locked = true;
      // Later migrations may alter chainlog's own tables; that DDL is the documented maintenance path.
      await client.query("set chainlog.maintenance = 'on'");
      await prepareSchema(client);
      await refuseNewerInstall(client);
      marker = await markBookkeepingPresent(client);
      // pg_catalog comes first implicitly; naming it would make it the schema unqualified CREATEs go to.
      // pg_temp is named last so that it is searched last for tables too, not first.
      await client.query('set search_path = chainlog, pg_temp');
      const applied = await runMigrations({ client: recording }, SQL_DIR, { logger: options.log });
      return { applied: applied.map((m) => m.name) };
    } finally {
      await client.query('set search_path = pg_catalog, pg_temp').catch(() => {});
      if (marker) await client.query('drop table if exists pg_temp.migrations').catch(() => {});
      await client.query('reset chainlog.maintenance').catch(() => {});
      if (locked) {
        await client.query('select pg_catalog.pg_advisory_unlock($1::pg_catalog.int8)', [POSTGRES_MIGRATIONS_LOCK_KEY]).catch(() => {});
      }
      await client
        .query(`select pg_catalog.set_config('search_path', $1::pg_catalog.text, false)`, [previousSearchPath])
        .catch(() => {});
    }
  } catch (e) {
    throw migrationError(e, serverError);
  } finally {
    client.off('notice', forwardNotice);
    if (ownClient) await ownClient.end().catch(() => {});
  }
}

/** The fields of a server notice that node-postgres passes to 'notice' listeners. */
interface Notice {
  severity?: string;
  message?: string;
}

/**
 * The notice as the installer should see it, or undefined for chatter: every install says that the
 * schema or the bookkeeping table "already exists, skipping", and, where another database installed
 * chainlog first, that its roles are already members of one another. chainlog's SQL starts what it
 * has to say with "chainlog: ".
 */
function noticeText(notice: Notice): string | undefined {
  const message = notice.message ?? '';
  if (notice.severity === 'WARNING') return `WARNING: ${message}`;
  return message.startsWith('chainlog: ') ? message : undefined;
}

interface SchemaState {
  me: string;
  owner: string;
  ours: boolean;
  holds_objects: boolean;
  /** relkind of chainlog.applied_migrations and chainlog.migrations, null when absent. */
  bookkeeping: string | null;
  migrations: string | null;
}

/**
 * Makes sure the `chainlog` schema is chainlog's, and that its bookkeeping is in place: creates both on
 * a fresh install, and moves an install made before chainlog.applied_migrations to it.
 *
 * A schema created beforehand by someone else is never adopted: its owner could drop chainlog's tables
 * whatever chainlog's triggers say. Nor one owned by another role that merely holds bookkeeping, which
 * anyone who can create the schema can fake, so an upgrade has to run as the role that installed.
 */
async function prepareSchema(client: pg.Client): Promise<void> {
  const { rows } = await client.query<SchemaState>(
    `select current_user as me, pg_catalog.pg_get_userbyid(n.nspowner) as owner,
            n.nspowner = (select r.oid from pg_catalog.pg_roles r where r.rolname = current_user) as ours,
            exists (select from pg_catalog.pg_depend d
                     where d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass and d.refobjid = n.oid) as holds_objects,
            (select c.relkind::pg_catalog.text from pg_catalog.pg_class c
              where c.relnamespace = n.oid and c.relname = 'applied_migrations') as bookkeeping,
            (select c.relkind::pg_catalog.text from pg_catalog.pg_class c
              where c.relnamespace = n.oid and c.relname = 'migrations') as migrations
       from pg_catalog.pg_namespace n
      where n.nspname = 'chainlog'`,
  );
  const state = rows[0];
  const installed = state !== undefined && (state.bookkeeping !== null || state.migrations === 'r');
  if (state && !state.ours) {
    const { me } = state;
    throw schemaTaken(
      installed
        ? `chainlog in this database was installed by ${JSON.stringify(state.owner)} (the owner of schema chainlog), ` +
            `but migrate runs as ${JSON.stringify(me)}`
        : `the schema chainlog already exists and belongs to ${JSON.stringify(state.owner)}, not to ${JSON.stringify(me)} ` +
            'that runs migrate; chainlog does not install into a schema another role controls (its owner could drop chainlog\'s tables)',
      installed
        ? `Run migrate as ${JSON.stringify(state.owner)}. If that role is not meant to control chainlog, chainlog here is not ` +
            'the one you installed: drop the schema (with its owner) and install again.'
        : `If the schema is a leftover, drop it (DROP SCHEMA chainlog) and run migrate again; if ${JSON.stringify(state.owner)} ` +
            'is meant to own chainlog, run migrate as that role.',
    );
  }
  if (state && !installed && state.holds_objects) {
    throw schemaTaken(
      'the schema chainlog already exists and holds objects, but chainlog is not installed in it; chainlog installs only into a schema of its own',
      'The schema is not chainlog\'s: rename or drop it, then run migrate again.',
    );
  }
  if (state?.bookkeeping === 'r' && state.migrations === 'v') return;

  await client.query('begin');
  try {
    if (!state) await client.query('create schema chainlog');
    if (state?.migrations === 'r' && state.bookkeeping === null) {
      // Installed before chainlog.applied_migrations existed: the same table under its new name.
      await client.query(`alter table chainlog.migrations rename to applied_migrations;
                          alter index chainlog.migrations_pkey rename to applied_migrations_pkey;
                          alter index chainlog.migrations_name_key rename to applied_migrations_name_key`);
    } else if (state?.bookkeeping == null) {
      // postgres-migrations' own definition (its migrations/0_create-migrations-table.sql), which it
      // then skips ("already exists"). It must exist before postgres-migrations looks, so it is here
      // rather than in sql/.
      await client.query(`create table chainlog.applied_migrations (
                            id pg_catalog.int4 primary key,
                            name pg_catalog.varchar(100) unique not null,
                            hash pg_catalog.varchar(40) not null,
                            executed_at pg_catalog.timestamp default current_timestamp)`);
    } else if (state.bookkeeping !== 'r' || (state.migrations !== null && state.migrations !== 'v')) {
      throw schemaTaken(
        'the schema chainlog holds a chainlog.applied_migrations or chainlog.migrations that chainlog did not create',
        'Install chainlog into a new database, or drop the schema chainlog (in a maintenance window) and install again.',
      );
    }
    // A simple view is updatable: postgres-migrations reads and inserts through it.
    await client.query(`create view chainlog.migrations as
                          select id, name, hash, executed_at from chainlog.applied_migrations`);
    await client.query(`comment on table chainlog.applied_migrations is
      'The chainlog migrations (sql/ files) applied to this database, written by migrate() through the view chainlog.migrations.'`);
    await client.query(`comment on view chainlog.migrations is
      'chainlog.applied_migrations under the name postgres-migrations uses; only migrate() writes it.'`);
    await revokeDefaultPrivileges(client);
    await client.query('commit');
  } catch (e) {
    await client.query('rollback').catch(() => {});
    throw e;
  }
}

/** ALTER DEFAULT PRIVILEGES may have given other roles rights on the bookkeeping: take them back. */
async function revokeDefaultPrivileges(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ revoke: string }>(
    `select distinct pg_catalog.format('revoke all on table %s from %s', c.oid::pg_catalog.regclass,
              case a.grantee when 0 then 'public' else pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) end) as revoke
       from pg_catalog.pg_class c cross join lateral pg_catalog.aclexplode(c.relacl) a
      where c.relnamespace = 'chainlog'::pg_catalog.regnamespace
        and c.relname in ('applied_migrations', 'migrations') and a.grantee <> c.relowner`,
  );
  for (const { revoke } of rows) await client.query(revoke);
}

function schemaTaken(what: string, hint: string): ChainlogError {
  return new ChainlogError(`${what}. ${hint}`, { code: 'CHAINLOG_SCHEMA_TAKEN', hint });
}

/**
 * A newer chainlog has applied files this one does not have. postgres-migrations only looks at the
 * files it is given, so it would call such a database up to date.
 */
async function refuseNewerInstall(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ id: number; name: string }>(
    'select id, name from chainlog.applied_migrations where id > $1::pg_catalog.int4 order by id',
    [lastMigrationId()],
  );
  if (rows.length === 0) return;
  const hint = 'Upgrade chainlog (the npm package) to the version that installed this database, or a later one, and run migrate with it.';
  const which = rows.map((r) => `${r.id} (${r.name})`).join(', ');
  throw new ChainlogError(
    `this database was installed or upgraded by a newer chainlog: it has applied migration(s) ${which}, which this chainlog's files lack. ${hint}`,
    { code: 'CHAINLOG_MIGRATIONS_NEWER', hint },
  );
}

/** The highest number among the files in sql/ (postgres-migrations reads it from the file name). */
function lastMigrationId(): number {
  return Math.max(0, ...readdirSync(SQL_DIR).flatMap((f) => /^(\d+)[-_].*\.sql$/.exec(f)?.[1] ?? []).map(Number));
}

/**
 * postgres-migrations takes its table to exist when any schema holds a table named `migrations`;
 * chainlog's is a view. With no such table elsewhere it would take the database for new and apply every
 * file again, so this session creates a temporary one for the run: it disappears with the session, also
 * when the process dies halfway. Returns whether it created it.
 */
async function markBookkeepingPresent(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ needed: boolean; may: boolean }>(
    `select not exists (select from pg_catalog.pg_class c
                         where c.relname = 'migrations' and c.relkind = 'r'
                           and (c.relpersistence <> 't' or c.relnamespace = pg_catalog.pg_my_temp_schema())) as needed,
            pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMPORARY') as may`,
  );
  if (!rows[0]!.needed) return false;
  if (!rows[0]!.may) {
    const hint = 'GRANT TEMPORARY ON DATABASE to the role that runs migrate (PUBLIC has it by default).';
    throw new ChainlogPermissionError(`the role that runs migrate may not create temporary tables, which migrate needs. ${hint}`, {
      code: '42501',
      hint,
    });
  }
  await client.query('create temporary table migrations ()');
  return true;
}

/** What went wrong, as a ChainlogError, from postgres-migrations' message and the server's error. */
function migrationError(e: unknown, serverError: unknown): ChainlogError {
  const message = e instanceof Error ? e.message : String(e);
  const failed = /An error occurred running '([^']+)'/.exec(message)?.[1];
  if (failed && serverError !== undefined) {
    const mapped = rolesError(serverError) ?? toChainlogError(serverError);
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

/**
 * 00006 creates chainlog's roles when they are missing and grants them to one another. A role that is
 * not a superuser gets 42501 there unless it may; the generic hint (grant chainlog_reader) would mislead.
 */
function rolesError(e: unknown): ChainlogError | undefined {
  const err = e as { code?: unknown; message?: unknown };
  if (err.code !== '42501' || typeof err.message !== 'string') return undefined;
  if (!/admin option on role|permission denied to (create|grant) role/.test(err.message)) return undefined;
  const hint =
    'A role that is not a superuser installs chainlog only if it holds ADMIN OPTION on chainlog_reader, chainlog_writer ' +
    'and chainlog_admin (as a superuser: GRANT chainlog_reader, chainlog_writer, chainlog_admin TO the_installing_role ' +
    'WITH ADMIN OPTION; on PostgreSQL 15 CREATEROLE is enough), and CREATEROLE if they do not exist yet (docs/SQL.md, Installing).';
  return new ChainlogPermissionError(`${err.message}. ${hint}`, { code: '42501', hint, cause: e });
}

/** postgres-migrations names a migration without its number and extension ('schema'); users know the file. */
function fileOf(name: string): string {
  const file = readdirSync(SQL_DIR).find((f) => f.replace(/^\d+[-_]/, '').replace(/\.sql$/, '') === name);
  return file ?? name;
}
