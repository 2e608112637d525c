// What the CLI prints of values writers control (stream names, actors, payloads, verify details, error
// messages quoting them): every character a terminal would act on is shown escaped, so a stream name
// cannot clear the screen and print a fake "intact" line over verify's real summary. --json is unchanged.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runVerify } from '../cli/commands/verify.js';
import { formatRecord, formatTable, green, printable, type Output } from '../cli/output.js';
import { createChainlogDatabase, databaseUrl, useChainlogDatabase } from './support/db.js';
import { runCli, type CliRun } from './support/cli.js';
import { asAttacker, seedStream } from './support/tamper.js';

// Each test starts a few CLI processes; on a loaded machine each takes seconds to start (as in cli.test.ts).
vi.setConfig({ testTimeout: 180_000 });

const db = useChainlogDatabase();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'chainlog-cli-output-'));
chmodSync(tmp, 0o755);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The attack from the security review: clear the screen, claim every chain is intact, hide the rest. */
const FAKE_INTACT = 'zzz\u001b[2J\u001b[HAll 3 stream(s) intact (24 events checked).\u001b[8m';
const FAKE_INTACT_SHOWN = 'zzz\\x1b[2J\\x1b[HAll 3 stream(s) intact (24 events checked).\\x1b[8m';
/** An actor that would reorder the rest of its line (RIGHT-TO-LEFT OVERRIDE) and recolour it. */
const ACTOR = 'mallory\u202e\u001b[32mnimda';
const ACTOR_SHOWN = 'mallory\\u202e\\x1b[32mnimda';

// Anything a terminal would act on, as printable() escapes it: C0 but line feed, DEL, C1, bidi controls.
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

type Run = CliRun;
const run = (args: string[]): Promise<Run> => runCli(args, { cwd: tmp });

/** Neither stream of a run holds a raw control character: not a pipe's ESC, nor a colour code. */
function expectNoRawControls(r: Run): void {
  expect(r.stdout).not.toMatch(RAW_CONTROL);
  expect(r.stderr).not.toMatch(RAW_CONTROL);
}

describe('printable()', () => {
  it('escapes C0 controls, DEL, C1 controls and the bidi overrides and isolates', () => {
    expect(printable('a\u001b[2Jb')).toBe('a\\x1b[2Jb');
    expect(printable('\u0000\u0007\u0008\u001f\u007f')).toBe('\\x00\\x07\\x08\\x1f\\x7f');
    expect(printable('\u0080\u0085\u009b\u009f')).toBe('\\x80\\x85\\x9b\\x9f');
    expect(printable('\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069')).toBe('\\u202a\\u202b\\u202c\\u202d\\u202e\\u2066\\u2067\\u2068\\u2069');
    expect(printable('a\tb\nc\rd')).toBe('a\\tb\\nc\\rd');
    // Invisible format characters and separators: a look-alike of chainlog's own stream reads as one.
    expect(printable('chain\u200blog.maintenance')).toBe('chain\\u200blog.maintenance');
    expect(printable('\u200f\u2060\ufeff\u00ad\u061c\u2028\u2029\u{e0041}x')).toBe('\\u200f\\u2060\\ufeff\\xad\\u061c\\u2028\\u2029\\u{e0041}x');
    expect(printable('café, 漢字, 🙂')).toBe('café, 漢字, 🙂');
    expect(printable(FAKE_INTACT)).toBe(FAKE_INTACT_SHOWN);
  });

  it('leaves everything else as it is: text, other Unicode, a backslash', () => {
    const text = 'acme/invoices é 日本 \u00a0\u00a0 \u2070 {"a": "b\\u001b"} 🎉';
    expect(printable(text)).toBe(text);
    expect(printable('')).toBe('');
  });

  it('multiline keeps line feeds and tabs (a CRLF becomes a line feed) and escapes the rest', () => {
    expect(printable('one\n\ttwo\r\nthree', { multiline: true })).toBe('one\n\ttwo\nthree');
    expect(printable('over\rwrite\u001b[2K\u202e', { multiline: true })).toBe('over\\rwrite\\x1b[2K\\u202e');
  });
});

describe('formatTable() and formatRecord()', () => {
  it('a table escapes its cells, folds whitespace, and measures widths on the escaped text', () => {
    const rows = [{ s: 'a\u001bb', n: 1 }, { s: 'x\ny\u202e', n: 22 }];
    const table = formatTable(rows, [{ header: 'S', value: (r) => r.s }, { header: 'N', value: (r) => r.n, right: true }]);
    expect(table).toBe(['S           N', 'a\\x1bb      1', 'x y\\u202e  22'].join('\n'));
  });

  it('cuts a flex column to fit on the escaped text', () => {
    const table = formatTable([{ s: '\u001b'.repeat(10) }], [{ header: 'STREAM', value: (r) => r.s, flex: true }], 12);
    expect(table.split('\n')[1]).toBe(`${'\\x1b'.repeat(2)}\\x1…`);
    expect(table.split('\n')[1]).toHaveLength(12);
  });

  it('a column\'s paint() colours the escaped, padded cell, and its codes count for nothing in the width', () => {
    vi.stubEnv('NO_COLOR', '');
    vi.stubEnv('TERM', 'xterm');
    try {
      const tty = { isTTY: true };
      const rows = [{ ok: true, s: 'a\u001b' }, { ok: false, s: 'b' }];
      const table = formatTable(rows, [
        { header: 'STREAM', value: (r) => r.s },
        { header: 'STATUS', value: (r) => (r.ok ? 'intact' : 'TAMPERED'), paint: (text, r) => (r.ok ? green(tty, text) : `<${text}>`) },
        { header: 'N', value: () => 1 },
      ]);
      expect(table.split('\n')).toEqual([
        'STREAM  STATUS    N',
        `a\\x1b   ${green(tty, 'intact')}    1`,
        'b       <TAMPERED>  1',
      ]);
      expect(green(tty, 'intact')).toBe('\u001b[32mintact\u001b[0m');
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('a record escapes its values, strings and JSON alike', () => {
    expect(formatRecord([['actor', ACTOR], ['payload', { note: 'x\u009by\u202e' }], ['none', null]])).toBe(
      ['actor:   mallory\\u202e\\x1b[32mnimda', 'payload: {"note":"x\\x9by\\u202e"}', 'none:    -'].join('\n'),
    );
  });
});

describe.concurrent('the CLI prints writers\' values escaped', () => {
  // verify and streams list every stream in the database: these tests get one of their own.
  let url = '';
  beforeAll(async () => {
    url = databaseUrl(await createChainlogDatabase());
    const pg = (await import('pg')).default;
    const pool = new pg.Pool({ connectionString: url });
    try {
      await seedStream(pool, FAKE_INTACT, 3);
      await seedStream(pool, 'honest', 4);
      await asAttacker(pool, `delete from chainlog.events where stream = 'honest' and seq = 2`);
    } finally {
      await pool.end();
    }
  });

  it('verify shows a stream name with its ESCs escaped, and the real TAMPERED summary', async () => {
    const [inDb, offline] = await Promise.all([run(['verify', '--database-url', url]), run(['verify', '--offline', '--database-url', url])]);
    for (const r of [inDb, offline]) {
      expect(r.code, r.stderr).toBe(1);
      expectNoRawControls(r);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines).toContainEqual(expect.stringMatching(/^honest\s+TAMPERED\s+1\s+2\s+deleted\b/));
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${escapeRegExp(FAKE_INTACT_SHOWN)}\\s+intact\\s+3\\b`)));
      expect(lines.at(-1)).toBe('1 of 2 stream(s) TAMPERED.');
    }
  });

  it('verify of only that stream still says intact, and an unknown stream\'s error quotes its name escaped', async () => {
    const [intact, unknown, unknownJson] = await Promise.all([
      run(['verify', '-s', FAKE_INTACT, '--database-url', url]),
      run(['verify', '-s', `no\u001b[2Jsuch\u202e`, '--database-url', url]),
      run(['verify', '-s', `no\u001b[2Jsuch\u202e`, '--database-url', url, '--json']),
    ]);
    expect(intact.code, intact.stderr).toBe(0);
    expectNoRawControls(intact);
    expect(intact.stdout.trimEnd().split('\n').at(-1)).toBe('All 1 stream(s) intact (3 events checked).');
    expect(unknown.code).toBe(2);
    expectNoRawControls(unknown);
    expect(unknown.stderr).toMatch(/^chainlog: there is no stream "no\\x1b\[2Jsuch\\u202e"/);
    // --json keeps the message as it was: the raw name, escaped by JSON.
    expect(unknownJson.code).toBe(2);
    expect(JSON.parse(unknownJson.stdout).error.message).toContain(`there is no stream "no\u001b[2Jsuch\u202e"`);
  });

  it('streams shows the name escaped; --json gives it as stored', async () => {
    const [table, machine] = await Promise.all([run(['streams', '--database-url', url]), run(['streams', '--json', '--database-url', url])]);
    expect(table.code, table.stderr).toBe(0);
    expectNoRawControls(table);
    expect(table.stdout).toMatch(new RegExp(`^${escapeRegExp(FAKE_INTACT_SHOWN)}\\s+\\d{4}-`, 'm'));
    expect(machine.code).toBe(0);
    expect(machine.stdout).not.toContain('\u001b');
    expect(JSON.parse(machine.stdout).streams.map((s: { stream: string }) => s.stream).sort()).toEqual(['honest', FAKE_INTACT].sort());
  });

  it('export echoes the stream name it was given escaped, and verify --file shows the name in the file escaped', async () => {
    const file = path.join(tmp, 'fake-intact.ndjson');
    const exported = await run(['export', '-s', FAKE_INTACT, '-o', file, '--database-url', url]);
    expect(exported.code, exported.stderr).toBe(0);
    // The name comes from the command line here, and perhaps from `chainlog streams` in a script before.
    expectNoRawControls(exported);
    expect(exported.stderr).toContain(`chainlog verify -s '${FAKE_INTACT_SHOWN}' --checkpoint `);
    const verified = await run(['verify', '--file', file]);
    expect(verified.code, verified.stderr).toBe(0);
    expectNoRawControls(verified);
    expect(verified.stdout).toMatch(new RegExp(`^${escapeRegExp(FAKE_INTACT_SHOWN)}\\s+intact\\s+3\\b`, 'm'));
  });

  it('verify on a terminal: only chainlog\'s own colour and progress codes are raw, the stream name is escaped', async () => {
    vi.stubEnv('NO_COLOR', '');
    vi.stubEnv('TERM', 'xterm');
    try {
      const out = terminalOutput();
      const code = await runVerify({ databaseUrl: url, json: false, offline: true, stream: [FAKE_INTACT] }, out);
      expect(code).toBe(0);
      // Less chainlog's own codes (colours; the progress line's clear), nothing is left to act on.
      const own = (text: string) => text.replace(/\u001b\[(?:[0-9;]*m|2K)|\r(?=\u001b\[2K)/g, '');
      expect(own(out.text.stdout)).not.toMatch(RAW_CONTROL);
      expect(own(out.text.stderr)).not.toMatch(RAW_CONTROL);
      expect(out.text.stdout).toContain(`\u001b[32mintact\u001b[0m`);
      expect(own(out.text.stderr)).toContain(`${FAKE_INTACT_SHOWN}: read 3 events`);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  describe('get and search', () => {
    let id = '';
    const PAYLOAD = { note: 'paid\u202e\u009b2J', esc: '\u001b[8m' };
    beforeAll(async () => {
      const { rows } = await db.query<{ id: string }>(
        `insert into chainlog.events (stream, actor, event_type, action, payload)
         values ('evil-actor', $1, $2, 'UPDATE', $3) returning id::text`,
        [ACTOR, 'PAID\u001b[2J', JSON.stringify(PAYLOAD)],
      );
      id = rows[0]!.id;
    });

    it('get shows the actor, event type and payload escaped; --json gives them as stored', async () => {
      const [text, machine] = await Promise.all([run(['get', id, '--database-url', db.url]), run(['get', id, '--json', '--database-url', db.url])]);
      expect(text.code, text.stderr).toBe(0);
      expectNoRawControls(text);
      expect(text.stdout).toMatch(new RegExp(`^actor:\\s+${escapeRegExp(ACTOR_SHOWN)}$`, 'm'));
      expect(text.stdout).toMatch(/^eventType:\s+PAID\\x1b\[2J$/m);
      // PostgreSQL's jsonb text already writes ESC as \u001b; U+202E and C1 controls it leaves raw.
      expect(text.stdout).toMatch(/^payload:\s+\{"esc": "\\u001b\[8m", "note": "paid\\u202e\\x9b2J"\}$/m);
      expect(machine.code).toBe(0);
      expect(JSON.parse(machine.stdout)).toMatchObject({ id, actor: ACTOR, eventType: 'PAID\u001b[2J', payload: PAYLOAD });
    });

    it('search shows the actor and event type escaped in its table; --json gives them as stored', async () => {
      const [table, machine] = await Promise.all([
        run(['search', '-s', 'evil-actor', '--database-url', db.url]),
        run(['search', '-s', 'evil-actor', '--json', '--database-url', db.url]),
      ]);
      expect(table.code, table.stderr).toBe(0);
      expectNoRawControls(table);
      const row = table.stdout.trimEnd().split('\n')[1]!.trim().split(/\s{2,}/);
      expect(row.slice(2, 8)).toEqual(['evil-actor', '1', ACTOR_SHOWN, 'PAID\\x1b[2J', 'UPDATE', 'success']);
      expect(machine.code).toBe(0);
      expect(JSON.parse(machine.stdout).events).toEqual([expect.objectContaining({ id, actor: ACTOR, eventType: 'PAID\u001b[2J', payload: PAYLOAD })]);
    });

    it('append prints the stream name it was given back escaped', async () => {
      const r = await run(['append', '-s', 'evil\u001b[2J\u202eappend', '-t', 'T', '-a', 'CREATE', '--database-url', db.url]);
      expect(r.code, r.stderr).toBe(0);
      expectNoRawControls(r);
      expect(r.stdout).toMatch(/^stream:\s+evil\\x1b\[2J\\u202eappend$/m);
    });
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An Output whose stdout and stderr say they are a terminal, 100 columns wide, and keep what is written. */
function terminalOutput(): Output & { text: { stdout: string; stderr: string } } {
  const text = { stdout: '', stderr: '' };
  const stream = (name: 'stdout' | 'stderr') =>
    Object.assign(
      new Writable({
        write(chunk, _encoding, done) {
          text[name] += String(chunk);
          done();
        },
      }),
      { isTTY: true, columns: 100 },
    );
  return { stdout: stream('stdout'), stderr: stream('stderr'), json: false, text };
}
