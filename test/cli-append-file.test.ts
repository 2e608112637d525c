// `chainlog append --file`: nothing in the file or on the command line is silently dropped. An event
// in an append-only log can never be corrected, so a wrong actor or a lost field is refused or applied,
// never ignored; and a file with a bad line appends nothing.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { runCli } from './support/cli.js';
import { useChainlogDatabase } from './support/db.js';

// Each test runs the CLI as a child process; several at once on a small machine take a while.
vi.setConfig({ testTimeout: 120_000 });

const db = useChainlogDatabase();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'chainlog-append-file-'));
chmodSync(tmp, 0o755);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Writes `lines` (objects as JSON, strings as they are) to an NDJSON file; returns its path. */
function ndjson(name: string, lines: Array<object | string>): string {
  const file = path.join(tmp, name);
  writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

const chainlog = (...args: string[]) => runCli([...args, '--database-url', db.url], { cwd: tmp });

async function events(stream: string) {
  const { rows } = await db.query(
    `select seq::int, actor, actor_type, result, resource_id, payload::text, request_id, occurred_at, host(source_ip) as source_ip
       from chainlog.events where stream = $1 order by seq`,
    [stream],
  );
  return rows;
}

async function streamExists(stream: string): Promise<boolean> {
  return (await db.query('select 1 from chainlog.streams where stream = $1', [stream])).rowCount! > 0;
}

describe.concurrent('chainlog append --file', () => {
  it('the event options fill in each line\'s fields it leaves out; a line\'s own values are kept', async () => {
    const file = ndjson('defaults.ndjson', [
      { eventType: 'LOGIN', action: 'LOGIN', resourceId: '42' },
      { eventType: 'LOGIN', action: 'LOGIN', actor: 'bob', result: 'success', payload: { b: 2 }, requestId: 'own' },
    ]);
    const r = await chainlog('append', '-f', file, '-s', 'defaults', '--actor', 'alice', '--actor-type', 'user', '--result', 'failure',
      '--source-ip', '203.0.113.7', '--request-id', 'r9', '--payload', '{"a": 1}', '--occurred-at', '2020-01-01T00:00:00Z');
    expect(r.code, r.stderr).toBe(0);
    const occurredAt = new Date('2020-01-01T00:00:00Z');
    expect(await events('defaults')).toEqual([
      { seq: 1, actor: 'alice', actor_type: 'user', result: 'failure', resource_id: '42', payload: '{"a": 1}', request_id: 'r9', occurred_at: occurredAt, source_ip: '203.0.113.7' },
      { seq: 2, actor: 'bob', actor_type: 'user', result: 'success', resource_id: null, payload: '{"b": 2}', request_id: 'own', occurred_at: occurredAt, source_ip: '203.0.113.7' },
    ]);
  });

  it('an unknown key is refused naming its line and the key meant, and nothing is appended, not even the lines before it', async () => {
    const file = ndjson('unknown-key.ndjson', [
      { eventType: 'LOGIN', action: 'LOGIN', stream: 'unknown-key' },
      '',
      { eventType: 'LOGIN', action: 'LOGIN', stream: 'unknown-key', resource_id: '42' },
    ]);
    const [text, machine] = await Promise.all([chainlog('append', '-f', file), chainlog('append', '-f', file, '--json')]);
    expect(text.code).toBe(2);
    expect(text.stderr).toMatch(/^chainlog: .*unknown-key\.ndjson, line 3: unknown key "resource_id" \(did you mean "resourceId"\?\)\. Nothing was appended\./m);
    expect(JSON.parse(machine.stdout)).toEqual({ error: expect.objectContaining({ code: 'CHAINLOG_INVALID_ARGUMENT' }) });
    expect(await streamExists('unknown-key')).toBe(false);
  });

  it('a key with no known spelling is refused too, with the keys a line may hold', async () => {
    const file = ndjson('no-such-key.ndjson', [{ eventType: 'LOGIN', action: 'LOGIN', stream: 'no-such-key', user: 'alice' }]);
    const r = await chainlog('append', '-f', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/line 1: unknown key "user"\. Nothing was appended\. A line holds an event .* with the keys eventType, action, stream, actor,/);
    expect(await streamExists('no-such-key')).toBe(false);
  });

  it('a text field that is not text is refused; one given as a number is stored as written', async () => {
    const bad = ndjson('object-actor.ndjson', [{ eventType: 'LOGIN', action: 'LOGIN', stream: 'typed', actor: { name: 'alice' } }]);
    const good = ndjson('number-id.ndjson', ['{"eventType": "X", "action": "CREATE", "stream": "typed", "resourceId": 12345678901234567890}']);
    const refused = await chainlog('append', '-f', bad);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/line 1: actor must be a string, not \{"name":"alice"\}\. Nothing was appended\./);
    expect((await chainlog('append', '-f', good)).code).toBe(0);
    expect(await events('typed')).toEqual([expect.objectContaining({ seq: 1, resource_id: '12345678901234567890' })]);
  });

  it('--event-type and --action name one event: with --file they are refused, not ignored', async () => {
    const file = ndjson('with-type.ndjson', [{ eventType: 'LOGIN', action: 'LOGIN', stream: 'with-type' }]);
    const r = await chainlog('append', '-f', file, '-t', 'OTHER');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^chainlog: Give either --file or --event-type\/--action, not both: each line of the file names its own eventType and action\./m);
    expect(await streamExists('with-type')).toBe(false);
  });
});
