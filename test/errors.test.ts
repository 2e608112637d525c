import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createChainlog } from '../src/client.js';
import { freePort } from '../src/embedded.js';
import {
  ChainlogAppendOnlyError,
  ChainlogAssignedFieldError,
  ChainlogConnectionError,
  ChainlogEncodingError,
  ChainlogError,
  ChainlogInvalidArgumentError,
  ChainlogInvalidEventError,
  ChainlogNotInstalledError,
  ChainlogPermissionError,
  ChainlogProtectedDdlError,
  ChainlogRetryableError,
  ChainlogUnknownStreamError,
  toChainlogError,
} from '../src/errors.js';
import { migrate } from '../src/migrate.js';
import { createEmptyDatabase, databaseUrl, useChainlogDatabase } from './support/db.js';

const db = useChainlogDatabase();
const chainlog = () => createChainlog({ pool: db.pool });

/** The ChainlogError a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<ChainlogError> {
  const e = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  return toChainlogError(e);
}

describe('errors raised by the database map to ChainlogError subclasses', () => {
  it('LC001: supplying a field chainlog assigns is a ChainlogAssignedFieldError naming the field', async () => {
    const e = await rejection(
      db.query(`insert into chainlog.events (stream, seq, event_type, action) values ('s', 7, 'T', 'CREATE')`),
    );
    expect(e).toBeInstanceOf(ChainlogAssignedFieldError);
    expect(e).toMatchObject({ code: 'LC001', field: 'seq' });
    expect(e.message).toMatch(/seq is assigned by chainlog.*Leave seq/);
  });

  it('LC002: an event without event_type is a ChainlogInvalidEventError with what to do', async () => {
    const e = await rejection(chainlog().append({ eventType: '', action: 'CREATE' }));
    expect(e).toBeInstanceOf(ChainlogInvalidEventError);
    expect(e).toMatchObject({ code: 'LC002', field: 'event_type' });
    expect(e.hint).toMatch(/Name what happened/);
    expect(e.message).toContain(e.hint);
  });

  it('LC002: a source IP setting that is not an address names the setting', async () => {
    const e = await rejection(
      chainlog().withContext({ sourceIp: 'not-an-ip' }, (tx) => tx.append({ eventType: 'T', action: 'CREATE' })),
    );
    expect(e).toBeInstanceOf(ChainlogInvalidEventError);
    expect(e).toMatchObject({ code: 'LC002', field: 'source_ip' });
  });

  it('LC002: a resource_id too long for the search index names resource_id, not the index', async () => {
    const e = await rejection(
      chainlog().append({ eventType: 'T', action: 'READ', resourceType: 'url', resourceId: randomBytes(1400).toString('hex') }),
    );
    expect(e).toBeInstanceOf(ChainlogInvalidEventError);
    expect(e).toMatchObject({ code: 'LC002', field: 'resource_id' });
    expect(e.message).toMatch(/resource_type and resource_id take 2803 bytes together, at most 2600/);
    expect(e.hint).toMatch(/payload/);
  });

  it('LC003: updating an event is a ChainlogAppendOnlyError that says to record a correction', async () => {
    await chainlog().append({ stream: 'lc003', eventType: 'T', action: 'CREATE' });
    const e = await rejection(db.query(`update chainlog.events set actor = 'x' where stream = 'lc003'`));
    expect(e).toBeInstanceOf(ChainlogAppendOnlyError);
    expect(e.code).toBe('LC003');
    expect(e.message).toMatch(/append-only.*correction as a new event/);
  });

  it('LC004: disabling chainlog\'s triggers is a ChainlogProtectedDdlError pointing at begin_maintenance', async () => {
    const e = await rejection(db.query('alter table chainlog.events disable trigger events_append_only'));
    expect(e).toBeInstanceOf(ChainlogProtectedDdlError);
    expect(e.code).toBe('LC004');
    expect(e.message).toContain('begin_maintenance');
  });

  it('LC005: verifying an unknown stream is a ChainlogUnknownStreamError carrying the stream', async () => {
    const e = await rejection(chainlog().verify({ stream: 'no-such-stream' }));
    expect(e).toBeInstanceOf(ChainlogUnknownStreamError);
    expect(e).toMatchObject({ code: 'LC005', stream: 'no-such-stream' });
  });

  it('LC006: a negative up_to_seq is a ChainlogInvalidArgumentError', async () => {
    await chainlog().append({ stream: 'lc006', eventType: 'T', action: 'CREATE' });
    const e = await rejection(chainlog().verify({ stream: 'lc006', upToSeq: -1 }));
    expect(e).toBeInstanceOf(ChainlogInvalidArgumentError);
    expect(e.code).toBe('LC006');
  });

  it('LC010: installing into a non-UTF8 database is a ChainlogEncodingError, even through migrate()', async () => {
    const name = `${new URL(db.url).pathname.slice(1)}_ascii`;
    await db.query(`create database "${name}" encoding 'SQL_ASCII' lc_collate 'C' lc_ctype 'C' template template0`);
    // migrate() itself throws the mapped class: no toChainlogError() needed.
    const e = await migrate({ connectionString: databaseUrl(name) }).then(
      () => undefined,
      (err: unknown) => err,
    );
    await db.query(`drop database "${name}"`);
    expect(e).toBeInstanceOf(ChainlogEncodingError);
    expect(e).toMatchObject({ code: 'LC010' });
    expect((e as Error).message).toMatch(/^migration 00001_schema\.sql failed and was rolled back; no later migration ran: the database must be UTF8, not SQL_ASCII\. Create the database/);
  });
});

describe('retryable errors', () => {
  it('40001: appending under REPEATABLE READ after another writer moved the head is retryable', async () => {
    const log = chainlog();
    await log.append({ stream: 'rr', eventType: 'T', action: 'CREATE' });
    const a = await db.connect();
    await a.query('begin isolation level repeatable read');
    await a.query('select count(*) from chainlog.events'); // takes the snapshot
    await log.append({ stream: 'rr', eventType: 'T', action: 'CREATE' });
    const e = await rejection(log.append({ stream: 'rr', eventType: 'T', action: 'CREATE' }, { db: a }));
    await a.query('rollback');
    expect(e).toBeInstanceOf(ChainlogRetryableError);
    expect(e).toMatchObject({ code: '40001', retryable: true });
    expect(e.message).toMatch(/run the whole transaction again/);
  });

  it('40P01: two transactions appending to two streams in opposite orders get a retryable deadlock error', async () => {
    const log = chainlog();
    const [a, b] = [await db.connect(), await db.connect()];
    await a.query('begin');
    await b.query('begin');
    await log.append({ stream: 'dl-x', eventType: 'T', action: 'CREATE' }, { db: a });
    await log.append({ stream: 'dl-y', eventType: 'T', action: 'CREATE' }, { db: b });
    const results = await Promise.allSettled([
      log.append({ stream: 'dl-y', eventType: 'T', action: 'CREATE' }, { db: a }),
      log.append({ stream: 'dl-x', eventType: 'T', action: 'CREATE' }, { db: b }),
    ]);
    await a.query('rollback');
    await b.query('rollback');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason).toBeInstanceOf(ChainlogRetryableError);
    expect(failed[0]!.reason).toMatchObject({ code: '40P01', retryable: true });
  });

  it('errors that a retry cannot fix are not retryable', async () => {
    const e = await rejection(chainlog().append({ eventType: 'T', action: '' }));
    expect(e.retryable).toBe(false);
  });
});

describe('connection and installation problems say what to do', () => {
  const opened: Array<{ close(): Promise<void> }> = [];
  afterAll(async () => {
    await Promise.all(opened.map((c) => c.close()));
  });
  const open = (connectionString: string) => {
    const log = createChainlog({ connectionString });
    opened.push(log);
    return log;
  };

  it('nothing listening on the port is a ChainlogConnectionError naming DATABASE_URL', async () => {
    const port = await freePort();
    const e = await rejection(open(`postgres://postgres@127.0.0.1:${port}/postgres`).streams());
    expect(e).toBeInstanceOf(ChainlogConnectionError);
    expect(e.code).toBe('ECONNREFUSED');
    expect(e.message).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*refused.*DATABASE_URL`));
  });

  it('a role that does not exist is a ChainlogConnectionError about the login', async () => {
    const u = new URL(db.url);
    u.username = `nobody_${randomBytes(3).toString('hex')}`;
    u.password = 'wrong';
    const e = await rejection(open(u.toString()).streams());
    expect(e).toBeInstanceOf(ChainlogConnectionError);
    expect(['28P01', '28000']).toContain(e.code);
    expect(e.message).toMatch(/refused the login/);
  });

  it('a database that does not exist is a ChainlogConnectionError saying how to create it', async () => {
    const e = await rejection(open(databaseUrl(`missing_${randomBytes(3).toString('hex')}`)).streams());
    expect(e).toBeInstanceOf(ChainlogConnectionError);
    expect(e.code).toBe('3D000');
    expect(e.message).toMatch(/CREATE DATABASE/);
  });

  it('a database without chainlog is a ChainlogNotInstalledError that says to migrate', async () => {
    const e = await rejection(open(databaseUrl(await createEmptyDatabase())).streams());
    expect(e).toBeInstanceOf(ChainlogNotInstalledError);
    expect(e.message).toMatch(/chainlog migrate/);
  });

  it('a role without chainlog\'s grants is a ChainlogPermissionError that names the roles to grant', async () => {
    const role = `chainlog_test_nobody_${randomBytes(3).toString('hex')}`;
    await db.query(`create role ${role}`);
    const client = await db.connect();
    try {
      await client.query(`set role ${role}`);
      const e = await rejection(createChainlog({ client }).append({ eventType: 'T', action: 'CREATE' }));
      expect(e).toBeInstanceOf(ChainlogPermissionError);
      expect(e.code).toBe('42501');
      expect(e.message).toMatch(/GRANT chainlog_reader .* chainlog_writer/);
    } finally {
      await client.query('reset role');
      await db.query(`drop role ${role}`);
    }
  });
});

describe('toChainlogError()', () => {
  it('keeps the original error as cause and passes a ChainlogError through unchanged', async () => {
    const original = await db.query('select 1/0').catch((e: unknown) => e);
    const mapped = toChainlogError(original);
    expect(mapped).toBeInstanceOf(ChainlogError);
    expect(mapped.code).toBe('22012');
    expect(mapped.cause).toBe(original);
    expect(toChainlogError(mapped)).toBe(mapped);
  });

  it('rejects an invalid argument in TypeScript before reaching the database', async () => {
    const e = await rejection(chainlog().search({ limit: 0 }));
    expect(e).toBeInstanceOf(ChainlogInvalidArgumentError);
    expect(e.code).toBe('CHAINLOG_INVALID_ARGUMENT');
  });

  it('every class is a ChainlogError and an Error, so one catch handles them all', () => {
    const e = toChainlogError(Object.assign(new Error('x'), { code: 'LC003' }));
    expect(e).toBeInstanceOf(ChainlogAppendOnlyError);
    expect(e).toBeInstanceOf(ChainlogError);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('ChainlogAppendOnlyError');
  });
});
