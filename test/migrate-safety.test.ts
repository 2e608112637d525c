// migrate() in a database whose owner is not trusted, next to an application's own migrations, and
// what it tells the installer. Each test makes its own database (and roles), and drops them.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate as runAppMigrations } from 'postgres-migrations';
import { afterEach, describe, expect, it } from 'vitest';
import { ChainlogError, ChainlogPermissionError } from '../src/errors.js';
import { migrate, SQL_DIR } from '../src/migrate.js';
import { schemaSnapshot } from '../src/schema-snapshot.js';
import { runCli } from './support/cli.js';
import { createEmptyDatabase, databaseUrl } from './support/db.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

/** Runs fn on a new superuser connection to the database, then closes it. */
async function on<T>(database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl(database) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A database of its own for the test, dropped afterwards; owned by `owner` when given. */
async function scratchDatabase(owner?: string): Promise<string> {
  const name = await createEmptyDatabase();
  cleanups.push(() => on('postgres', (c) => c.query(`drop database if exists "${name}" with (force)`)));
  if (owner) await on('postgres', (c) => c.query(`alter database "${name}" owner to ${owner}`));
  return name;
}

/** A role that is not a superuser, dropped after the test (after its databases: cleanups run in reverse). */
async function scratchRole(kind: string): Promise<string> {
  const role = `chainlog_test_${kind}_${randomBytes(3).toString('hex')}`;
  await on('postgres', (c) => c.query(`create role ${role}`));
  cleanups.push(() => on('postgres', (c) => c.query(`drop role if exists ${role}`)));
  return role;
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => undefined, (e: unknown) => e);
}

/** A folder with an application's own postgres-migrations file. */
function appMigrations(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-app-migrations-'));
  writeFileSync(path.join(dir, '1_app.sql'), 'create table app_things (id int primary key);\n');
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The application's postgres-migrations run, with the session's default search_path ("$user", public). */
async function runApp(database: string, dir: string): Promise<string[]> {
  return on(database, async (client) => (await runAppMigrations({ client }, dir)).map((m) => m.name));
}

// Look-alikes the database owner puts in public: each records who called it.
const RECORDER = `
  create table public.calls (fn text, caller name, superuser boolean);
  grant insert on public.calls to public;
  create function public.record_call(fn text) returns void language sql as
    $$ insert into public.calls select fn, current_user, r.rolsuper from pg_catalog.pg_roles r where r.rolname operator(pg_catalog.=) current_user $$;`;

describe('code of the database owner', () => {
  it('a look-alike pg_advisory_lock(text) the owner put in public does not run when a superuser migrates', async () => {
    const app = await scratchRole('owner');
    const database = await scratchDatabase(app);
    await on(database, (c) =>
      c.query(`set role ${app}; ${RECORDER}
        create function public.pg_advisory_lock(k text) returns void language sql as $$ select public.record_call('pg_advisory_lock') $$;
        create function public.pg_advisory_unlock(k text) returns boolean language sql as $$ select public.record_call('pg_advisory_unlock'); select true $$;`),
    );
    await migrate({ connectionString: databaseUrl(database) });
    const { rows } = await on(database, (c) => c.query('select * from public.calls'));
    expect(rows).toEqual([]);
  });

  it('look-alikes with the very signatures of built-ins do not run when the owner puts public before pg_catalog', async () => {
    const app = await scratchRole('owner');
    const database = await scratchDatabase(app);
    await on(database, (c) =>
      c.query(`set role ${app}; ${RECORDER}
        create function public.pg_advisory_lock(k bigint) returns void language sql as $$ select public.record_call('pg_advisory_lock') $$;
        create function public.pg_advisory_unlock(k bigint) returns boolean language sql as $$ select public.record_call('pg_advisory_unlock'); select true $$;
        create function public.pg_try_advisory_lock(k bigint) returns boolean language sql as $$ select public.record_call('pg_try_advisory_lock'); select true $$;
        create function public.set_config(text, text, boolean) returns text language sql as $$ select public.record_call('set_config'); select $2 $$;
        create function public.name_eq(name, name) returns boolean language sql as
          $$ select public.record_call('='); select $1::text operator(pg_catalog.=) $2::text $$;
        create operator public.= (leftarg = name, rightarg = name, function = public.name_eq);
        alter database "${database}" set search_path = public, pg_catalog;`),
    );
    await migrate({ connectionString: databaseUrl(database) });
    const { rows } = await on(database, (c) => c.query('select * from public.calls'));
    expect(rows).toEqual([]);
  });

  it('leaves the caller\'s session as it found it: its search_path, no temporary table, no advisory lock', async () => {
    const database = await scratchDatabase();
    const state = await on(database, async (client) => {
      await client.query('set search_path = "$user", public, pg_catalog');
      await migrate({ client });
      return (
        await client.query(`select current_setting('search_path') as search_path,
                                   to_regclass('pg_temp.migrations') as temporary_table,
                                   (select count(*)::int from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()) as locks`)
      ).rows[0];
    });
    expect(state).toEqual({ search_path: '"$user", public, pg_catalog', temporary_table: null, locks: 0 });
  });
});

describe('an application\'s own migrations table', () => {
  it('installs next to a public.migrations table of the application\'s own postgres-migrations', async () => {
    const database = await scratchDatabase();
    const dir = appMigrations();
    expect(await runApp(database, dir)).toEqual(['create-migrations-table', 'app']);
    const { applied } = await migrate({ connectionString: databaseUrl(database) });
    expect(applied).toContain('schema');
    expect((await migrate({ connectionString: databaseUrl(database) })).applied).toEqual([]);
    expect(await runApp(database, dir)).toEqual([]);
  });

  it('leaves the application\'s own postgres-migrations working after chainlog is installed', async () => {
    const database = await scratchDatabase();
    await migrate({ connectionString: databaseUrl(database) });
    const dir = appMigrations();
    expect(await runApp(database, dir)).toEqual(['create-migrations-table', 'app']);
    expect(await runApp(database, dir)).toEqual([]);
    const tables = await on(database, (c) =>
      c.query(`select relnamespace::regnamespace::text as schema, relname as name, relkind as kind
                 from pg_class where relname in ('migrations', 'applied_migrations', 'app_things') order by 1, 2`),
    );
    expect(tables.rows).toEqual([
      { schema: 'chainlog', name: 'applied_migrations', kind: 'r' },
      { schema: 'chainlog', name: 'migrations', kind: 'v' },
      { schema: 'public', name: 'app_things', kind: 'r' },
      { schema: 'public', name: 'migrations', kind: 'r' },
    ]);
    expect((await migrate({ connectionString: databaseUrl(database) })).applied).toEqual([]);
  });

  it('moves the bookkeeping of an install made before chainlog.applied_migrations, ending up as a fresh install does', async () => {
    const fresh = await scratchDatabase();
    await migrate({ connectionString: databaseUrl(fresh) });
    const older = await scratchDatabase();
    await migrate({ connectionString: databaseUrl(older) });
    await on(older, (c) =>
      c.query(`begin; set local chainlog.maintenance = on;
        drop view chainlog.migrations;
        alter table chainlog.applied_migrations rename to migrations;
        alter index chainlog.applied_migrations_pkey rename to migrations_pkey;
        alter index chainlog.applied_migrations_name_key rename to migrations_name_key;
        comment on table chainlog.migrations is null;
        commit`),
    );
    expect((await migrate({ connectionString: databaseUrl(older) })).applied).toEqual([]);
    const inspect = (database: string) =>
      on(database, async (c) => ({
        snapshot: await schemaSnapshot(c),
        bookkeeping: (
          await c.query(`select c.oid::regclass::text as name, c.relkind as kind, obj_description(c.oid, 'pg_class') is not null as commented
                           from pg_class c where c.relnamespace = 'chainlog'::regnamespace and c.relname like '%migrations%' order by 1`)
        ).rows,
        applied: (await c.query('select id, name, hash from chainlog.migrations order by id')).rows,
      }));
    expect(await inspect(older)).toEqual(await inspect(fresh));
  });
});

describe('a chainlog schema chainlog did not create', () => {
  it('refuses to install into a chainlog schema the database owner created, naming the owner', async () => {
    const app = await scratchRole('owner');
    const database = await scratchDatabase(app);
    await on(database, (c) => c.query(`set role ${app}; create schema chainlog`));
    const e = await failure(migrate({ connectionString: databaseUrl(database) }));
    expect(e).toBeInstanceOf(ChainlogError);
    expect(e).toMatchObject({ code: 'CHAINLOG_SCHEMA_TAKEN', hint: expect.stringMatching(/DROP SCHEMA chainlog/) });
    expect((e as Error).message).toContain(`belongs to "${app}"`);
    const left = await on(database, (c) =>
      c.query(`select (select count(*)::int from pg_depend where refobjid = 'chainlog'::regnamespace) as objects`),
    );
    expect(left.rows).toEqual([{ objects: 0 }]);
  });

  it('refuses a chainlog schema of the installing role\'s that already holds objects', async () => {
    const database = await scratchDatabase();
    await on(database, (c) => c.query('create schema chainlog; create table chainlog.other (x int)'));
    const e = await failure(migrate({ connectionString: databaseUrl(database) }));
    expect(e).toMatchObject({ code: 'CHAINLOG_SCHEMA_TAKEN' });
    expect((e as Error).message).toMatch(/holds objects/);
  });

  it('installs into an empty chainlog schema the installing role created', async () => {
    const database = await scratchDatabase();
    await on(database, (c) => c.query('create schema chainlog'));
    expect((await migrate({ connectionString: databaseUrl(database) })).applied).toContain('schema');
  });

  it('refuses to upgrade a chainlog whose schema another role owns, bookkeeping or not', async () => {
    const app = await scratchRole('owner');
    const database = await scratchDatabase(app);
    // Anyone who may create the schema can make it look installed.
    await on(database, (c) =>
      c.query(`set role ${app}; create schema chainlog;
        create table chainlog.applied_migrations (id int primary key, name varchar(100) unique not null,
                                                  hash varchar(40) not null, executed_at timestamp default current_timestamp)`),
    );
    const e = await failure(migrate({ connectionString: databaseUrl(database) }));
    expect(e).toMatchObject({ code: 'CHAINLOG_SCHEMA_TAKEN' });
    expect((e as Error).message).toContain(`installed by "${app}"`);
  });
});

describe('what migrate() tells the installer', () => {
  /** An empty database owned by a role that is not a superuser, and a superuser session acting as that role. */
  async function asInstaller(fn: (client: pg.Client) => Promise<void>): Promise<void> {
    const installer = await scratchRole('installer');
    // The roles exist (the test run's template installed chainlog); granting them needs ADMIN OPTION.
    await on('postgres', (c) => c.query(`grant chainlog_reader, chainlog_writer, chainlog_admin to ${installer} with admin option`));
    const database = await scratchDatabase(installer);
    await on(database, async (client) => {
      await client.query(`set role ${installer}`);
      await fn(client);
    });
  }

  it('passes on the notice that a role that is not a superuser installs without event triggers, and nothing else', async () => {
    await asInstaller(async (client) => {
      const notices: string[] = [];
      await migrate({ client, onNotice: (m) => notices.push(m) });
      expect(notices).toEqual([expect.stringMatching(/^chainlog: chainlog_test_installer_\w+ may not create event triggers/)]);
    });
  });

  it('sends the notices to log when no onNotice is given', async () => {
    await asInstaller(async (client) => {
      const lines: string[] = [];
      await migrate({ client, log: (m) => lines.push(m) });
      expect(lines).toContainEqual(expect.stringMatching(/may not create event triggers/));
    });
  });

  it('chainlog migrate prints that notice on stderr, also with --json', async () => {
    const installer = await scratchRole('installer');
    await on('postgres', (c) =>
      c.query(`alter role ${installer} login password 'fx'; grant chainlog_reader, chainlog_writer, chainlog_admin to ${installer} with admin option`),
    );
    const url = new URL(databaseUrl(await scratchDatabase(installer)));
    url.username = installer;
    url.password = 'fx';
    const run = await runCli(['migrate', '--json', '--database-url', url.toString()], { cwd: os.tmpdir() });
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/^chainlog: chainlog_test_installer_\w+ may not create event triggers/m);
    expect(JSON.parse(run.stdout).applied).toContain('schema');
  });

  it('refuses, rather than call it up to date, a database a newer chainlog installed', async () => {
    const database = await scratchDatabase();
    await migrate({ connectionString: databaseUrl(database) });
    const next = Math.max(...readdirSync(SQL_DIR).flatMap((f) => /^(\d+)_.*\.sql$/.exec(f)?.[1] ?? []).map(Number)) + 1;
    await on(database, (c) => c.query(`insert into chainlog.migrations (id, name, hash) values ($1, 'from_the_future', 'x')`, [next]));
    const e = await failure(migrate({ connectionString: databaseUrl(database) }));
    expect(e).toBeInstanceOf(ChainlogError);
    expect(e).toMatchObject({ code: 'CHAINLOG_MIGRATIONS_NEWER', hint: expect.stringMatching(/Upgrade chainlog/) });
    expect((e as Error).message).toContain(`${next} (from_the_future)`);
  });

  it('says what a role that is not a superuser needs when it may not grant chainlog\'s roles', async () => {
    const installer = await scratchRole('installer');
    const database = await scratchDatabase(installer);
    const e = await on(database, async (client) => {
      await client.query(`set role ${installer}`);
      return failure(migrate({ client }));
    });
    expect(e).toBeInstanceOf(ChainlogPermissionError);
    expect(e).toMatchObject({ code: '42501', hint: expect.stringMatching(/WITH ADMIN OPTION/) });
    expect((e as Error).message).toMatch(/^migration 00006_api_and_roles\.sql failed/);
  });
});
