import pg from 'pg';
import { describe, expect, it } from 'vitest';
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

  it('keeps the migrations bookkeeping table inside the chainlog schema', async () => {
    const url = databaseUrl(await createEmptyDatabase());
    await migrate({ connectionString: url });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query(
      `select table_schema from information_schema.tables where table_name = 'migrations'`,
    );
    await client.end();
    expect(rows).toEqual([{ table_schema: 'chainlog' }]);
  });

  it('two installs at once into the same database both succeed', async () => {
    const url = databaseUrl(await createEmptyDatabase());
    const results = await Promise.all([migrate({ connectionString: url }), migrate({ connectionString: url })]);
    const applied = results.map((r) => r.applied.length).sort();
    expect(applied[0]).toBe(0);
    expect(applied[1]).toBeGreaterThan(0);
  });
});
