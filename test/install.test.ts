import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ChainlogConnectionError, ChainlogError } from '../src/errors.js';
import { freePort } from '../src/embedded.js';
import { migrate } from '../src/migrate.js';
import { createEmptyDatabase, databaseUrl } from './support/db.js';

describe('installing chainlog', () => {
  it('installs into an empty database and a second run applies nothing', async () => {
    const url = databaseUrl(await createEmptyDatabase());
    const first = await migrate({ connectionString: url });
    expect(first.applied.length).toBeGreaterThan(0);
    const second = await migrate({ connectionString: url });
    expect(second.applied).toEqual([]);
  });

  it('keeps the migrations bookkeeping inside the chainlog schema, and no table named migrations anywhere', async () => {
    const url = databaseUrl(await createEmptyDatabase());
    await migrate({ connectionString: url });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query(
      `select table_schema, table_name, table_type from information_schema.tables
        where table_name in ('migrations', 'applied_migrations') order by table_name`,
    );
    await client.end();
    // A table named migrations in any schema would make postgres-migrations runs of the application's
    // own take it for theirs: chainlog's is a view.
    expect(rows).toEqual([
      { table_schema: 'chainlog', table_name: 'applied_migrations', table_type: 'BASE TABLE' },
      { table_schema: 'chainlog', table_name: 'migrations', table_type: 'VIEW' },
    ]);
  });

  it('two installs at once into the same database both succeed', async () => {
    const url = databaseUrl(await createEmptyDatabase());
    const results = await Promise.all([migrate({ connectionString: url }), migrate({ connectionString: url })]);
    const applied = results.map((r) => r.applied.length).sort();
    expect(applied[0]).toBe(0);
    expect(applied[1]).toBeGreaterThan(0);
  });

  it('refuses, with a ChainlogError naming the files, a database installed from different migration files', async () => {
    const url = databaseUrl(await createEmptyDatabase());
    await migrate({ connectionString: url });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    // What an install from an earlier commit looks like: the recorded hash of one file differs.
    await client.query(`update chainlog.migrations set hash = md5('earlier') where id = 3`);
    await client.end();
    const e = await migrate({ connectionString: url }).then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(ChainlogError);
    expect(e).toMatchObject({ code: 'CHAINLOG_MIGRATIONS_CHANGED' });
    expect((e as Error).message).toMatch(/00003_chain\.sql.*install into a new database/);
  });

  it('removed in a maintenance window, leaves ALTER TABLE on the database\'s other tables working', async () => {
    const url = databaseUrl(await createEmptyDatabase());
    await migrate({ connectionString: url });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`begin; select chainlog.begin_maintenance('remove chainlog'); drop schema chainlog cascade; commit`);
      // The DDL guard (schema chainlog_guard) is still there; it must not trip over the missing tables.
      await client.query('create table public.other (x int); alter table public.other add column y int');
    } finally {
      await client.end();
    }
  });

  it('an unreachable server is a ChainlogConnectionError, not a driver error', async () => {
    const url = `postgres://postgres@127.0.0.1:${await freePort()}/postgres`;
    const e = await migrate({ connectionString: url }).then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(ChainlogConnectionError);
    expect(e).toMatchObject({ code: 'ECONNREFUSED' });
  });
});
