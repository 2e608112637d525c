// Backups: what a DBA does with pg_dump and pg_restore (docs/SQL.md, "Backups and restores"), run for
// real. A whole-database restore must give back every chain intact, with the same recorded heads, and
// every protection; an older backup restored over the log must be caught by a later checkpoint; an
// edited dump must be caught by verify(); a major upgrade through a dump must keep every hash; a
// data-only restore must either fail whole or come back intact.
//
// pg_dump refuses a server newer than itself, so these tests need PostgreSQL's client programs of the
// server's major version or later: from PG_BINDIR, /usr/lib/postgresql/<major>/bin or the PATH. The
// embedded PostgreSQL 18 ships none, so on it they are skipped unless such programs are installed;
// CI runs them on the machine's PostgreSQL 15.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createChainlog, type StreamInfo } from '../src/client.js';
import { startEmbedded } from '../src/embedded.js';
import { runCli } from './support/cli.js';
import { createChainlogDatabase, createEmptyDatabase, databaseUrl } from './support/db.js';
import { seedStream } from './support/tamper.js';

const run = promisify(execFile);

async function serverMajor(): Promise<number> {
  const client = new pg.Client({ connectionString: inject('serverUrl') });
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>("select current_setting('server_version_num') as v");
    return Math.floor(Number(rows[0]!.v) / 10000);
  } finally {
    await client.end();
  }
}

/** A directory holding pg_dump, pg_dumpall, pg_restore and psql that can dump a server of this major version, or null. */
async function clientPrograms(major: number): Promise<string | null> {
  let versioned: string[] = [];
  try {
    versioned = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
      .map((v) => `/usr/lib/postgresql/${v}/bin`);
  } catch {
    // not a Debian-style installation
  }
  const candidates = [process.env.PG_BINDIR, ...versioned, ...(process.env.PATH ?? '').split(path.delimiter)];
  for (const dir of candidates) {
    if (!dir) continue;
    try {
      const { stdout } = await run(path.join(dir, 'pg_dump'), ['--version']);
      const found = Number(/\(PostgreSQL\) (\d+)/.exec(stdout)?.[1]);
      if (found >= major) {
        await run(path.join(dir, 'pg_restore'), ['--version']);
        await run(path.join(dir, 'psql'), ['--version']);
        await run(path.join(dir, 'pg_dumpall'), ['--version']);
        return dir;
      }
    } catch {
      // not there, or not runnable
    }
  }
  return null;
}

const major = await serverMajor();
const bin = await clientPrograms(major);
if (!bin) console.warn(`backup-restore.test.ts: skipped, no pg_dump of PostgreSQL ${major} or later found (set PG_BINDIR)`);

// Made only when the tests run: a file whose tests are all skipped runs no afterAll to remove it.
const tmp = bin ? mkdtempSync(path.join(os.tmpdir(), 'chainlog-backup-')) : '';
const clients: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  clients.push(client);
  return client;
}

/** Runs one of PostgreSQL's programs; resolves with its exit code and output instead of throwing. */
async function pgProgram(name: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await run(path.join(bin!, name), args, { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

const heads = async (url: string): Promise<StreamInfo[]> => {
  const client = await connect(url);
  return createChainlog({ client }).streams();
};

async function verdicts(url: string) {
  const client = await connect(url);
  const { rows } = await client.query('select stream, ok, checked::int, problem from chainlog.verify_all() order by stream');
  return rows;
}

/**
 * Every privilege held on chainlog's tables, views, sequences and their columns, as (object, grantee, privilege).
 * No ACL means the owner's default privileges: pg_dump leaves out grants that equal them.
 */
async function privileges(url: string): Promise<string[]> {
  const client = await connect(url);
  const { rows } = await client.query<{ p: string }>(`
    select format('%s %s %s', c.relname, a.grantee::regrole, a.privilege_type) as p
      from pg_class c, aclexplode(coalesce(c.relacl, acldefault(case c.relkind when 'S' then 's' else 'r' end::"char", c.relowner))) a
     where c.relnamespace = 'chainlog'::regnamespace
       and a.privilege_type <> 'MAINTAIN' -- new in PostgreSQL 17, the owner's by default
    union all
    select format('%s.%s %s %s', c.relname, att.attname, a.grantee::regrole, a.privilege_type)
      from pg_class c join pg_attribute att on att.attrelid = c.oid, aclexplode(att.attacl) a
     where c.relnamespace = 'chainlog'::regnamespace
     order by 1`);
  return rows.map((r) => r.p);
}

describe.skipIf(!bin)('backups with pg_dump and pg_restore', () => {
  let sourceUrl: string;
  let source: pg.Client;
  let dump: string;
  let headsAtDump: StreamInfo[];

  beforeAll(async () => {
    sourceUrl = databaseUrl(await createChainlogDatabase());
    source = await connect(sourceUrl);
    await seedStream(source, 'orders', 5); // one statement: the head is settled at commit
    for (let i = 0; i < 3; i++) {
      await source.query(`insert into chainlog.events (stream, event_type, action, actor, payload)
                          values ('payments', 'PAYMENT', 'CREATE', 'billing@example.com', $1)`, [{ amount: i }]);
    }
    await source.query(`begin; select chainlog.begin_maintenance('before the backup'); commit`);
    headsAtDump = await heads(sourceUrl);
    expect(headsAtDump.map((h) => [h.stream, h.headSeq])).toEqual([['chainlog.maintenance', '1'], ['orders', '5'], ['payments', '3']]);
    dump = path.join(tmp, 'chainlog.dump');
    const dumped = await pgProgram('pg_dump', ['--format=custom', `--file=${dump}`, `--dbname=${sourceUrl}`]);
    expect(dumped.stderr).toBe('');
    expect(dumped.code).toBe(0);
  });

  it('a whole database restored into an empty one with plain pg_restore: every chain intact, the same heads, every protection, and the chains go on', async () => {
    const url = databaseUrl(await createEmptyDatabase());
    const restored = await pgProgram('pg_restore', [`--dbname=${url}`, dump]);
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);

    expect(await heads(url)).toEqual(headsAtDump);
    expect(await verdicts(url)).toEqual([
      { stream: 'chainlog.maintenance', ok: true, checked: 1, problem: null },
      { stream: 'orders', ok: true, checked: 5, problem: null },
      { stream: 'payments', ok: true, checked: 3, problem: null },
    ]);
    const client = await connect(url);
    for (const stream of ['orders', 'payments']) {
      expect(await createChainlog({ client }).verifyOffline({ stream, workers: 0 })).toMatchObject({ ok: true });
    }

    // Still append-only for every role, the restoring superuser included, and still guarded.
    for (const sql of ["update chainlog.events set actor = 'mallory' where seq = 1", 'delete from chainlog.events', 'truncate chainlog.events']) {
      await expect(client.query(sql)).rejects.toMatchObject({ code: 'LC003' });
    }
    await expect(client.query('alter table chainlog.events disable trigger events_append_only')).rejects.toMatchObject({ code: 'LC004' });
    // The same privileges as in the source, table by table and column by column: writers insert, nobody updates.
    expect(await privileges(url)).toEqual(await privileges(sourceUrl));
    const { rows: writer } = await client.query(`select has_column_privilege('chainlog_writer', 'chainlog.events', 'payload', 'INSERT') as insert,
                                                        has_table_privilege('chainlog_writer', 'chainlog.events', 'UPDATE') as update`);
    expect(writer[0]).toEqual({ insert: true, update: false });

    // The next event takes the next seq, chained on the restored head (and an id: the identity sequence came back too).
    const payments = headsAtDump.find((h) => h.stream === 'payments')!;
    const { rows: next } = await client.query(`
      insert into chainlog.events (stream, event_type, action, actor, payload)
      values ('payments', 'PAYMENT', 'CREATE', 'billing@example.com', '{}')
      returning seq::text, encode(prev_hash, 'hex') as prev`);
    expect(next[0]).toEqual({ seq: '4', prev: payments.headHash });
    expect((await verdicts(url)).every((v) => v.ok)).toBe(true);
  });

  it('an older backup restored over the log: intact inside the database, truncated against a checkpoint signed after it', async () => {
    // The log goes on after the backup, and the compliance team signs the heads.
    await seedStream(source, 'orders', 2);
    const keys = mkdtempSync(path.join(tmp, 'keys-'));
    const cli = (args: string[]) => runCli(args, { cwd: keys });
    expect((await cli(['keygen', path.join(keys, 'audit')])).code).toBe(0);
    const signed = path.join(keys, 'heads.json');
    const signing = await cli(['checkpoint', '--key', path.join(keys, 'audit.key.pem'), '-o', signed, '--database-url', sourceUrl]);
    expect(signing.code).toBe(0);

    // Yesterday's backup comes back: seven events of orders are five again.
    const url = databaseUrl(await createEmptyDatabase());
    expect((await pgProgram('pg_restore', [`--dbname=${url}`, dump])).code).toBe(0);
    const inside = await cli(['verify', '--database-url', url]);
    expect(inside.code).toBe(0);
    expect((await verdicts(url)).every((v) => v.ok)).toBe(true);

    const checked = await cli(['verify', '--checkpoints', signed, '--public-key', path.join(keys, 'audit.pub.pem'), '--json', '--database-url', url]);
    expect(checked.code).toBe(1);
    expect(JSON.parse(checked.stdout).streams).toEqual([
      expect.objectContaining({ stream: 'chainlog.maintenance', ok: true }),
      expect.objectContaining({ stream: 'orders', ok: false, problem: 'truncated', firstBadSeq: '6' }),
      expect.objectContaining({ stream: 'payments', ok: true, checked: 3 }),
    ]);
  });

  it('a dump edited before it is restored: verify() names the changed event', async () => {
    const plain = path.join(tmp, 'chainlog.sql');
    expect((await pgProgram('pg_dump', ['--format=plain', `--file=${plain}`, `--dbname=${sourceUrl}`])).code).toBe(0);
    // Event 3 of orders, in the COPY data of chainlog.events: its actor is changed, nothing else.
    const lines = readFileSync(plain, 'utf8').split('\n');
    const start = lines.findIndex((l) => l.startsWith('COPY chainlog.events '));
    const columns = /\(([^)]*)\)/.exec(lines[start]!)![1]!.split(', ');
    const [streamAt, seqAt, actorAt] = ['stream', 'seq', 'actor'].map((c) => columns.indexOf(c));
    const target = lines.findIndex((l, i) => i > start && l.split('\t')[streamAt!] === 'orders' && l.split('\t')[seqAt!] === '3');
    const fields = lines[target]!.split('\t');
    expect(fields[actorAt!]).toBe('seed@example.com');
    fields[actorAt!] = 'mallory@example.com';
    lines[target] = fields.join('\t');
    writeFileSync(plain, lines.join('\n'));

    const url = databaseUrl(await createEmptyDatabase());
    const restored = await pgProgram('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', `--file=${plain}`, `--dbname=${url}`]);
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    const client = await connect(url);
    const { rows } = await client.query(`select ok, first_bad_seq::int, problem from chainlog.verify('orders')`);
    expect(rows[0]).toEqual({ ok: false, first_bad_seq: 3, problem: 'modified' });
    expect(await createChainlog({ client }).verifyOffline({ stream: 'orders', workers: 0 })).toMatchObject({ ok: false, firstBadSeq: '3', problem: 'modified' });
  });

  // A log kept for years outlives its PostgreSQL version. The usual major upgrade without pg_upgrade:
  // the roles with pg_dumpall, then the database with pg_dump, restored into the new server.
  it.skipIf(major >= 18)('a major upgrade through a dump: chains written on this server verify on PostgreSQL 18, unusual values included', async () => {
    const url = databaseUrl(await createChainlogDatabase());
    const old = await connect(url);
    await old.query(`insert into chainlog.events (stream, event_type, action, actor, actor_type, occurred_at, source_ip, request_id,
                                                  resource_type, resource_id, payload, before, after)
                     values ('upgrade', 'RECORD_UPDATED', 'UPDATE', 'zoë@example.com', 'user', '2024-02-29 23:59:59.999999+05:30',
                             '2001:db8::1', 'req-1', 'record', 'r/1',
                             $1, $2, $3)`, [
      '{"float": 1.5e300, "tenth": 0.1, "big": 123456789012345678901234567890, "exp": 1E+2, "text": "żółć 😀 \\t\\"q\\" \\\\", "none": null, "nested": {"b": [1, "two", false], "a": {}}}',
      '{"status": "draft", "amount": -0.000001}',
      '{"status": "final", "amount": 1e-7}',
    ]);
    await seedStream(old, 'upgrade', 3);
    const before = await heads(url);
    const rows = 'select stream, seq, encode(hash, \'hex\') as hash from chainlog.events order by stream, seq';
    const stored = (await old.query(rows)).rows;
    const file = path.join(tmp, 'upgrade.dump');
    expect((await pgProgram('pg_dump', ['--format=custom', `--file=${file}`, `--dbname=${url}`])).code).toBe(0);
    const roles = await pgProgram('pg_dumpall', ['--roles-only', `--dbname=${url}`]);
    expect(roles.code).toBe(0);
    writeFileSync(path.join(tmp, 'roles.sql'), roles.stdout);

    const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-pg18-')); // startEmbedded makes it the server's own
    const target = await startEmbedded({ dataDir: path.join(dir, 'data'), persistent: false });
    const ourClients = clients.length; // the clients from here on are the new server's: closed before it stops
    try {
      // The roles first: "role postgres already exists" is expected and harmless, so no ON_ERROR_STOP.
      await pgProgram('psql', ['-X', '-q', `--file=${path.join(tmp, 'roles.sql')}`, `--dbname=${target.connectionString('postgres')}`]);
      const upgradedUrl = target.connectionString('chainlog');
      const admin = await connect(target.connectionString('postgres'));
      await admin.query('create database chainlog');
      const restored = await pgProgram('pg_restore', [`--dbname=${upgradedUrl}`, file]);
      expect(restored.code).toBe(0);

      const upgraded = await connect(upgradedUrl);
      expect((await upgraded.query<{ v: string }>("select current_setting('server_version_num') as v")).rows[0]!.v).toMatch(/^18/);
      expect(await heads(upgradedUrl)).toEqual(before);
      expect((await upgraded.query(rows)).rows).toEqual(stored);
      expect(await verdicts(upgradedUrl)).toEqual([{ stream: 'upgrade', ok: true, checked: 4, problem: null }]);
      expect(await createChainlog({ client: upgraded }).verifyOffline({ stream: 'upgrade', workers: 0 })).toMatchObject({ ok: true, checked: 4 });
      expect(await privileges(upgradedUrl)).toEqual(await privileges(url));
      const { rows: next } = await upgraded.query(`insert into chainlog.events (stream, event_type, action, actor, payload)
                                                   values ('upgrade', 'RECORD_UPDATED', 'UPDATE', 'zoë@example.com', '{}') returning seq::int`);
      expect(next[0].seq).toBe(5);
      expect((await verdicts(upgradedUrl))[0]).toMatchObject({ ok: true, checked: 5 });
    } finally {
      await Promise.all(clients.splice(ourClients).map((c) => c.end().catch(() => {})));
      await target.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('a data-only restore into a database where chainlog is installed and empty', () => {
    const tables = ['--schema=chainlog', '--table=events', '--table=events_id_seq', '--table=stream_heads'];

    it('without the maintenance window it fails whole: the chain trigger refuses the rows, nothing is half-written', async () => {
      const url = databaseUrl(await createChainlogDatabase());
      const plain = await pgProgram('pg_restore', ['--data-only', '--single-transaction', ...tables, `--dbname=${url}`, dump]);
      expect(plain.code).toBe(1);
      expect(plain.stderr).toMatch(/seq is assigned by chainlog and must not be supplied/);
      const triggersOff = await pgProgram('pg_restore', ['--data-only', '--single-transaction', '--disable-triggers', ...tables, `--dbname=${url}`, dump]);
      expect(triggersOff.code).toBe(1);
      expect(triggersOff.stderr).toMatch(/begin_maintenance/);
      const client = await connect(url);
      const { rows } = await client.query('select (select count(*) from chainlog.events)::int as events, (select count(*) from chainlog.stream_heads)::int as heads');
      expect(rows[0]).toEqual({ events: 0, heads: 0 });
    });

    it('with chainlog.maintenance and --disable-triggers: the same heads, intact, and the next event gets a fresh id and the next seq', async () => {
      const url = databaseUrl(await createChainlogDatabase());
      const restored = await pgProgram(
        'pg_restore',
        ['--data-only', '--single-transaction', '--disable-triggers', ...tables, `--dbname=${url}`, dump],
        { PGOPTIONS: '-c chainlog.maintenance=on' },
      );
      expect(restored.stderr).toBe('');
      expect(restored.code).toBe(0);
      expect(await heads(url)).toEqual(headsAtDump);
      expect((await verdicts(url)).map((v) => v.ok)).toEqual([true, true, true]);
      const client = await connect(url);
      const { rows: triggers } = await client.query(`select count(*)::int as n from pg_trigger where tgrelid = 'chainlog.events'::regclass and tgenabled <> 'O'`);
      expect(triggers[0].n).toBe(0);
      const { rows } = await client.query(`insert into chainlog.events (stream, event_type, action, actor, payload)
                                           values ('orders', 'ORDER', 'CREATE', 'shop@example.com', '{}') returning seq::int`);
      expect(rows[0].seq).toBe(6);
      expect((await verdicts(url)).every((v) => v.ok)).toBe(true);
    });
  });
});
