import { describe, expect, it } from 'vitest';
import { useChainlogDatabase } from './support/db.js';

const db = useChainlogDatabase();

async function lastEvent(stream: string) {
  const { rows } = await db.query(
    `select actor, actor_type, host(source_ip) as source_ip, request_id, result
       from chainlog.events where stream = $1 order by seq desc limit 1`,
    [stream],
  );
  return rows[0];
}

describe('context from transaction settings', () => {
  it('fills actor, actor_type, source_ip and request_id from SET LOCAL chainlog.*', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query(`set local chainlog.actor = 'alice@acme'`);
    await client.query(`set local chainlog.actor_type = 'api_key'`);
    await client.query(`set local chainlog.source_ip = '203.0.113.7'`);
    await client.query(`set local chainlog.request_id = 'req-42'`);
    await client.query(`insert into chainlog.events (stream, event_type, action) values ('ctx', 'LOGIN', 'LOGIN')`);
    await client.query('commit');
    expect(await lastEvent('ctx')).toEqual({
      actor: 'alice@acme',
      actor_type: 'api_key',
      source_ip: '203.0.113.7',
      request_id: 'req-42',
      result: 'success',
    });
  });

  it('falls back to session_user as a service and to the client address when nothing is set', async () => {
    await db.query(`insert into chainlog.events (stream, event_type, action) values ('no-ctx', 'E', 'CREATE')`);
    const { rows } = await db.query(`select session_user::text as u, host(inet_client_addr()) as ip`);
    expect(await lastEvent('no-ctx')).toMatchObject({ actor: rows[0].u, actor_type: 'service', source_ip: rows[0].ip, request_id: null });
  });

  it('lets values in the row win over the settings', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query(`set local chainlog.actor = 'alice@acme'`);
    await client.query(`select chainlog.append('E', 'CREATE', 'row-wins', actor => 'bob', actor_type => 'system', source_ip => '::1')`);
    await client.query('commit');
    expect(await lastEvent('row-wins')).toMatchObject({ actor: 'bob', actor_type: 'system', source_ip: '::1' });
  });

  it('forgets SET LOCAL context at the end of the transaction', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query(`set local chainlog.actor = 'alice@acme'`);
    await client.query('commit');
    await client.query(`select chainlog.append('E', 'CREATE', 'forgotten')`);
    expect((await lastEvent('forgotten')).actor).not.toBe('alice@acme');
  });

  it('stamps recorded_at with the database clock', async () => {
    const { rows: appended } = await db.query(`select id from chainlog.append('E', 'CREATE', 'clock')`);
    const { rows } = await db.query(
      `select abs(extract(epoch from recorded_at - clock_timestamp())) < 5 as recent from chainlog.events where id = $1`,
      [appended[0].id],
    );
    expect(rows).toEqual([{ recent: true }]);
  });
});

describe('bad input gets a clear error and writes nothing', () => {
  it.each(['seq', 'recorded_at', 'prev_hash', 'hash', 'data_digest', 'format_version'])(
    'refuses a writer-supplied %s with LC001 naming the field',
    async (field) => {
      const value = { seq: '1', recorded_at: 'now()', prev_hash: `'\\x00'`, hash: `'\\x00'`, data_digest: `'\\x00'`, format_version: '1' }[field];
      await expect(
        db.query(`insert into chainlog.events (stream, event_type, action, ${field}) values ('supplied', 'E', 'CREATE', ${value})`),
      ).rejects.toMatchObject({ code: 'LC001', message: expect.stringContaining(field), hint: expect.any(String) });
    },
  );

  it.each([
    ['a missing event_type', `insert into chainlog.events (stream, action) values ('bad', 'CREATE')`, 'event_type'],
    ['an empty action', `insert into chainlog.events (stream, event_type, action) values ('bad', 'E', '')`, 'action'],
    ['an unknown result', `insert into chainlog.events (stream, event_type, action, result) values ('bad', 'E', 'CREATE', 'maybe')`, 'result'],
    ['an unknown actor_type', `insert into chainlog.events (stream, event_type, action, actor_type) values ('bad', 'E', 'CREATE', 'robot')`, 'actor_type'],
    ['an empty stream', `insert into chainlog.events (stream, event_type, action) values ('', 'E', 'CREATE')`, 'stream'],
    ['an infinite occurred_at', `insert into chainlog.events (stream, event_type, action, occurred_at) values ('bad', 'E', 'CREATE', 'infinity')`, 'occurred_at'],
  ])('refuses %s with LC002 naming the field', async (_name, sql, field) => {
    await expect(db.query(sql)).rejects.toMatchObject({ code: 'LC002', message: expect.stringContaining(field), hint: expect.any(String) });
  });

  it('refuses text fields too long for the search indexes with LC002 naming the field, and writes nothing', async () => {
    // md5 hex does not compress, so these would not fit an index entry (2,704 bytes at most): without the
    // check PostgreSQL refuses them with 54000 naming an index.
    const long = (bytes: number) => `(select left(string_agg(md5(g::text), ''), ${bytes}) from generate_series(1, 100) g)`;
    const insert = (columns: string, values: string) =>
      db.query(`insert into chainlog.events (stream, event_type, action, ${columns}) select 'long', 'E', 'CREATE', ${values}`);
    for (const [columns, values, field] of [
      ['resource_type, resource_id', `'url', ${long(2600)}`, 'resource_id'],
      ['resource_type, resource_id', `${long(1500)}, ${long(1200)}`, 'resource_type'],
      ['actor', long(2700), 'actor'],
    ] as const) {
      await expect(insert(columns, values)).rejects.toMatchObject({
        code: 'LC002', message: expect.stringMatching(new RegExp(`^chainlog: ${field} is too long`)), hint: expect.stringContaining('payload'),
      });
    }
    await expect(
      db.query(`insert into chainlog.events (stream, event_type, action) select ${long(2700)}, 'E', 'CREATE'`),
    ).rejects.toMatchObject({ code: 'LC002', message: expect.stringContaining('stream is too long: 2700 bytes') });
    expect((await db.query(`select count(*)::int as n from chainlog.events where stream = 'long'`)).rows).toEqual([{ n: 0 }]);
    // Up to the limit they are stored and chained, long as the row is as a whole.
    await insert('actor, resource_type, resource_id', `${long(2000)}, 'url', ${long(2597)}`);
    expect((await db.query(`select ok, checked::int from chainlog.verify('long')`)).rows).toEqual([{ ok: true, checked: 1 }]);
  });

  it('refuses an invalid chainlog.source_ip setting with LC002 naming the setting', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query(`set local chainlog.source_ip = 'not-an-ip'`);
    await expect(client.query(`select chainlog.append('E', 'CREATE', 'bad-ip')`)).rejects.toMatchObject({
      code: 'LC002',
      message: expect.stringContaining('chainlog.source_ip'),
    });
    await client.query('rollback');
  });

  it('refuses an invalid chainlog.actor_type setting with LC002', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query(`set local chainlog.actor_type = 'robot'`);
    await expect(client.query(`select chainlog.append('E', 'CREATE', 'bad-type')`)).rejects.toMatchObject({ code: 'LC002' });
    await client.query('rollback');
  });

  it('writes no row of a multi-row INSERT with one bad row, and leaves the head where it was', async () => {
    await db.query(`select chainlog.append('E', 'CREATE', 'atomic')`);
    await expect(
      db.query(`insert into chainlog.events (stream, event_type, action) values ('atomic', 'E', 'CREATE'), ('atomic', null, 'CREATE')`),
    ).rejects.toMatchObject({ code: 'LC002' });
    const { rows } = await db.query(`select count(*)::int as n, (select head_seq::int from chainlog.streams where stream = 'atomic') as head
                                       from chainlog.events where stream = 'atomic'`);
    expect(rows).toEqual([{ n: 1, head: 1 }]);
    await db.query(`select chainlog.append('E', 'CREATE', 'atomic')`);
    const { rows: after } = await db.query(`select ok, checked::int from chainlog.verify('atomic')`);
    expect(after).toEqual([{ ok: true, checked: 2 }]);
  });
});
