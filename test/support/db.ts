// Each test file gets its own database, cloned from the run's migrated template (fast and isolated).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';

export interface TestDatabase {
  /** Connection string of this file's database, as the superuser. */
  url: string;
  /** A pool on `url`, opened lazily and closed after the file. */
  pool: pg.Pool;
  /** Runs one query on the pool. */
  query: <R extends pg.QueryResultRow = any>(text: string, values?: unknown[]) => Promise<pg.QueryResult<R>>;
  /** A fresh connected client (closed after the file). */
  connect: (options?: Partial<pg.ClientConfig>) => Promise<pg.Client>;
}

export function databaseUrl(database: string): string {
  const u = new URL(inject('serverUrl'));
  u.pathname = `/${database}`;
  return u.toString();
}

async function onServer<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('serverUrl') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty database (not migrated) and returns its name. */
export async function createEmptyDatabase(): Promise<string> {
  const name = `${inject('runId')}_e_${randomBytes(4).toString('hex')}`;
  await onServer((c) => c.query(`create database "${name}"`));
  return name;
}

/** Creates a database with chainlog installed, cloned from the run's template. */
export async function createChainlogDatabase(): Promise<string> {
  const runId = inject('runId');
  const name = `${runId}_t_${randomBytes(4).toString('hex')}`;
  await onServer((c) => c.query(`create database "${name}" template "${runId}_template"`));
  return name;
}

/** Registers hooks giving this test file its own chainlog database. */
export function useChainlogDatabase(): TestDatabase {
  const clients: pg.Client[] = [];
  let pool: pg.Pool | undefined;
  const db = {
    url: '',
    get pool() {
      pool ??= new pg.Pool({ connectionString: db.url, max: 20 });
      return pool;
    },
    query: (text: string, values?: unknown[]) => db.pool.query(text, values),
    connect: async (options: Partial<pg.ClientConfig> = {}) => {
      const client = new pg.Client({ connectionString: db.url, ...options });
      await client.connect();
      clients.push(client);
      return client;
    },
  } as TestDatabase;
  beforeAll(async () => {
    db.url = databaseUrl(await createChainlogDatabase());
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await pool?.end();
  });
  return db;
}
