import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { migrate } from '../src/migrate.js';
import { createEmptyDatabase, databaseUrl, useChainlogDatabase } from './support/db.js';
import { asAttacker, seedStream } from './support/tamper.js';

const db = useChainlogDatabase();

/** Runs `sql` as `role` (SET ROLE from the superuser test connection) in a transaction rolled back after. */
async function asRole(role: string, sql: string): Promise<unknown[]> {
  const client = await db.connect();
  await client.query('begin');
  try {
    await client.query(`set local role ${role}`);
    return (await client.query(sql)).rows;
  } finally {
    await client.query('rollback');
  }
}

describe('append-only', () => {
  it.each([
    ['UPDATE', `update chainlog.events set actor = 'mallory'`],
    ['DELETE', `delete from chainlog.events`],
    ['TRUNCATE', `truncate chainlog.events`],
  ])('refuses %s even for the superuser who owns the table, with LC003 and a hint', async (op, sql) => {
    await db.query(`select chainlog.append('E', 'CREATE', 'fixed')`);
    await expect(db.query(sql)).rejects.toMatchObject({
      code: 'LC003',
      message: expect.stringContaining(`${op} on chainlog.events is not allowed`),
      hint: expect.stringContaining('new event'),
    });
    const { rows } = await db.query(`select count(*)::int as n from chainlog.events where stream = 'fixed' and actor <> 'mallory'`);
    expect(rows[0].n).toBeGreaterThan(0);
  });

  it('refuses to delete or truncate the recorded stream heads', async () => {
    await expect(db.query('delete from chainlog.stream_heads')).rejects.toMatchObject({ code: 'LC003' });
    await expect(db.query('truncate chainlog.stream_heads')).rejects.toMatchObject({ code: 'LC003' });
  });

  it('refuses to move a recorded head backwards, or to give it to another stream', async () => {
    await db.query(`select chainlog.append('E', 'CREATE', 'forward')`);
    await expect(db.query(`update chainlog.stream_heads set head_seq = 0 where stream = 'forward'`)).rejects.toMatchObject({
      code: 'LC003',
      message: 'chainlog: the recorded head of stream "forward" cannot move back from seq 1 to 0',
    });
    await expect(db.query(`update chainlog.stream_heads set stream = 'forward-2' where stream = 'forward'`)).rejects.toMatchObject({
      code: 'LC003',
      message: 'chainlog: the recorded head of stream "forward" cannot be given to stream "forward-2"',
    });
  });

  it('grants nobody UPDATE, DELETE or TRUNCATE on chainlog.events, the owner included', async () => {
    const { rows } = await db.query(
      `select grantee, privilege_type from information_schema.role_table_grants
        where table_schema = 'chainlog' and table_name = 'events' and privilege_type in ('UPDATE', 'DELETE', 'TRUNCATE')`,
    );
    expect(rows).toEqual([]);
  });
});

describe('roles', () => {
  it('chainlog_writer can append, insert and read, and is denied UPDATE and DELETE by privilege', async () => {
    expect(await asRole('chainlog_writer', `select seq from chainlog.append('E', 'CREATE', 'by-writer')`)).toHaveLength(1);
    expect(
      await asRole('chainlog_writer', `insert into chainlog.events (stream, event_type, action) values ('by-writer', 'E', 'CREATE') returning seq`),
    ).toHaveLength(1);
    await expect(asRole('chainlog_writer', `update chainlog.events set actor = 'x'`)).rejects.toMatchObject({ code: '42501' });
    await expect(asRole('chainlog_writer', `delete from chainlog.events`)).rejects.toMatchObject({ code: '42501' });
  });

  it('chainlog_writer cannot write the recorded heads directly', async () => {
    await expect(
      asRole('chainlog_writer', `update chainlog.stream_heads set head_seq = head_seq + 1`),
    ).rejects.toMatchObject({ code: '42501' });
  });

  it('chainlog_reader can read and verify but not write', async () => {
    await db.query(`select chainlog.append('E', 'CREATE', 'for-reader')`);
    expect(await asRole('chainlog_reader', `select ok from chainlog.verify('for-reader')`)).toEqual([{ ok: true }]);
    expect(await asRole('chainlog_reader', `select stream from chainlog.streams where stream = 'for-reader'`)).toHaveLength(1);
    await expect(asRole('chainlog_reader', `select chainlog.append('E', 'CREATE', 'for-reader')`)).rejects.toMatchObject({
      code: '42501',
    });
    await expect(
      asRole('chainlog_reader', `insert into chainlog.events (event_type, action) values ('E', 'CREATE')`),
    ).rejects.toMatchObject({ code: '42501' });
  });

  it('chainlog_writer may insert every column but id: it cannot take ids with OVERRIDING SYSTEM VALUE', async () => {
    const { rows: granted } = await db.query(
      `select array_agg(column_name::text order by column_name) as cols from information_schema.column_privileges
        where table_schema = 'chainlog' and table_name = 'events' and grantee = 'chainlog_writer' and privilege_type = 'INSERT'`,
    );
    const { rows: all } = await db.query(
      `select array_agg(attname::text order by attname) as cols from pg_attribute
        where attrelid = 'chainlog.events'::regclass and attnum > 0 and not attisdropped and attname <> 'id'`,
    );
    expect(granted[0].cols).toEqual(all[0].cols);

    await db.query(`select chainlog.append('E', 'CREATE', 'taken-id')`);
    const { rows: before } = await db.query(`select head_seq from chainlog.streams where stream = 'taken-id'`);
    // An id already used: with ON CONFLICT DO NOTHING the row would be skipped after it was chained.
    await expect(
      asRole(
        'chainlog_writer',
        `insert into chainlog.events (id, stream, event_type, action) overriding system value
         select min(id), 'taken-id', 'E', 'CREATE' from chainlog.events on conflict do nothing`,
      ),
    ).rejects.toMatchObject({ code: '42501' });
    const { rows: after } = await db.query(`select head_seq from chainlog.streams where stream = 'taken-id'`);
    expect(after).toEqual(before);
  });

  it('a writer that forges the carried head in its settings cannot make the recorded head name a missing event', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query('set local role chainlog_writer');
    await client.query(`insert into chainlog.events (stream, event_type, action) select 'forged-head', 'E', 'CREATE' from generate_series(1, 3)`);
    // After its last event: nothing it writes is chained on this, but the settle at commit runs after it.
    await client.query(`select set_config('chainlog.head', repeat('ab', 32) || '1000', true)`);
    await client.query('commit');
    const { rows } = await db.query(
      `select s.head_seq::int, s.head_hash = e.hash as names_last_event
         from chainlog.streams s join chainlog.events e on e.stream = s.stream and e.seq = s.head_seq
        where s.stream = 'forged-head'`,
    );
    expect(rows).toEqual([{ head_seq: 3, names_last_event: true }]);
    expect((await db.query(`select ok from chainlog.verify('forged-head')`)).rows).toEqual([{ ok: true }]);
  });

  it('streams named chainlog.* are chainlog\'s own: a writer cannot forge a maintenance record', async () => {
    for (const stream of ['chainlog.maintenance', 'chainlog.anything']) {
      await expect(
        asRole(
          'chainlog_writer',
          `insert into chainlog.events (stream, event_type, action, payload)
           values ('${stream}', 'CHAINLOG_MAINTENANCE_BEGAN', 'EXECUTE', '{"reason": "routine"}')`,
        ),
      ).rejects.toMatchObject({ code: 'LC002', message: expect.stringContaining(`stream "${stream}" is reserved`) });
    }
    // A name that merely contains chainlog is the writer's.
    expect(await asRole('chainlog_writer', `select seq from chainlog.append('E', 'CREATE', 'chainlog-demo.x')`)).toHaveLength(1);
  });

  it('chainlog_admin can open a maintenance window; a writer cannot', async () => {
    expect(await asRole('chainlog_admin', `select chainlog.begin_maintenance('test') is not null as ok`)).toEqual([{ ok: true }]);
    await expect(asRole('chainlog_writer', `select chainlog.begin_maintenance('test')`)).rejects.toMatchObject({ code: '42501' });
  });
});

// chainlog carries a stream's head in transaction-local settings, and its internal _chain_first() can be
// called from any role's own trigger (docs/THREAT-MODEL.md). A writer misusing either must not forge
// chainlog's own records, stop verification, or stop a stream from taking events.
describe('a writer that sets chainlog\'s settings by hand or calls its internals', () => {
  /** Runs `statements` as chainlog_writer in one transaction, committed unless one fails. */
  async function asWriter(...statements: string[]): Promise<void> {
    const client = await db.connect();
    await client.query('begin');
    try {
      await client.query('set local role chainlog_writer');
      for (const sql of statements) await client.query(sql);
      await client.query('commit');
    } catch (e) {
      await client.query('rollback');
      throw e;
    } finally {
      await client.end();
    }
  }
  const carryHead = (stream: string, head: string) =>
    `select set_config('chainlog.head_stream', '${stream}', true), set_config('chainlog.head', ${head}, true)`;
  const realHead = (stream: string) => `(select encode(hash, 'hex') || seq from chainlog.last_event('${stream}'))`;
  /** A trigger of the writer's own, on a temporary table, that calls _chain_first() `times` times for the stream it is given. */
  const ownTrigger = (times: number) => [
    'create temp table t (s text)',
    `create function pg_temp.f() returns trigger language plpgsql as $$
     declare r chainlog.events;
     begin
       r.stream := new.s; r.event_type := 'X'; r.action := 'X'; r.actor := 'x'; r.actor_type := 'user'; r.result := 'success';
       ${'perform chainlog._chain_first(r);'.repeat(times)}
       return new;
     end $$`,
    'create trigger t before insert on t for each row execute function pg_temp.f()',
  ];

  it('cannot write to a chainlog.* stream through a carried head, even with the head row claimed by its own trigger', async () => {
    await db.query(`select chainlog.begin_maintenance('a real window')`);
    const forge = `insert into chainlog.events (stream, event_type, action, actor, payload)
                   values ('chainlog.maintenance', 'CHAINLOG_MAINTENANCE_BEGAN', 'EXECUTE', 'postgres', '{"reason": "forged"}')`;
    await expect(asWriter(carryHead('chainlog.maintenance', realHead('chainlog.maintenance')), forge))
      .rejects.toMatchObject({ code: 'LC002', message: expect.stringContaining('stream "chainlog.maintenance" is reserved') });
    // The same after claiming the head row and marking it pending, so that the settle at commit would record the forgery.
    await expect(asWriter(...ownTrigger(2), `insert into t values ('chainlog.maintenance')`,
      carryHead('chainlog.maintenance', realHead('chainlog.maintenance')), forge))
      .rejects.toMatchObject({ code: 'LC002' });
    await expect(asWriter(carryHead('chainlog.new', `repeat('00', 32) || '0'`),
      `insert into chainlog.events (stream, event_type, action) values ('chainlog.new', 'E', 'X')`))
      .rejects.toMatchObject({ code: 'LC002' });
    const { rows } = await db.query(`select count(*)::int as n from chainlog.events where payload->>'reason' = 'forged' or stream = 'chainlog.new'`);
    expect(rows).toEqual([{ n: 0 }]);
    expect((await db.query(`select ok from chainlog.verify('chainlog.maintenance')`)).rows).toEqual([{ ok: true }]);
  });

  it('cannot record a head for an empty stream name, which would make verify_all() fail for every stream', async () => {
    await expect(asWriter(...ownTrigger(1), `insert into t values ('')`))
      .rejects.toMatchObject({ code: '42501', message: 'chainlog: _chain_first() is internal to the chain trigger' });
    expect((await db.query(`select count(*)::int as n from chainlog.stream_heads where stream = ''`)).rows).toEqual([{ n: 0 }]);
    expect((await db.query('select count(*)::int as n from chainlog.verify_all()')).rows[0].n).toBeGreaterThan(0);
  });

  it('events written on a carried head set by hand do not stop the stream: the next event takes the seq after them and verify() keeps reporting them', async () => {
    await seedStream(db.pool, 'victim', 2);
    // No claim, no lock, no recorded head: an event at seq 3, correctly chained on the real head.
    await asWriter(carryHead('victim', realHead('victim')),
      `insert into chainlog.events (stream, event_type, action) values ('victim', 'POISON', 'X')`);
    expect((await db.query(`select first_bad_seq::int, problem from chainlog.verify('victim')`)).rows)
      .toEqual([{ first_bad_seq: 3, problem: 'inserted' }]);
    // Before, every later event of the stream, anyone's, collided with it on (stream, seq) for good.
    const { rows: next } = await db.query(`select seq::int from chainlog.append('E', 'CREATE', 'victim')`);
    expect(next).toEqual([{ seq: 4 }]);
    // Chained on the recorded head (seq 2), not on the unrecorded event: the chain does not absorb it.
    expect((await db.query(`select first_bad_seq::int, problem, detail from chainlog.verify('victim')`)).rows)
      .toEqual([{ first_bad_seq: 4, problem: 'forked', detail: 'events 3 and 4 both claim event 2 as their predecessor' }]);
    expect((await db.query(`select head_seq::int from chainlog.streams where stream = 'victim'`)).rows).toEqual([{ head_seq: 4 }]);
    expect((await db.query(`select seq::int from chainlog.append('E', 'CREATE', 'victim')`)).rows).toEqual([{ seq: 5 }]);
  });

  it('an event placed further beyond the head gets in the way of transactions of several events, as THREAT-MODEL says, and one-event transactions step over it', async () => {
    await seedStream(db.pool, 'ahead', 3);
    // An event at seq 6, with the head at 3.
    await asWriter(carryHead('ahead', `repeat('00', 32) || '5'`),
      `insert into chainlog.events (stream, event_type, action) values ('ahead', 'STRAY', 'X')`);
    const five = `insert into chainlog.events (stream, event_type, action) select 'ahead', 'E', 'X' from generate_series(1, 5)`;
    // Its first two events take seqs 4 and 5; the third, carried, reaches seq 6. Again when retried.
    for (let i = 0; i < 2; i++) {
      await expect(db.query(five)).rejects.toMatchObject({ code: '23505', constraint: 'events_stream_seq_key' });
    }
    // One-event transactions take 4 and 5, then step over 6.
    const seqs = [];
    for (let i = 0; i < 3; i++) seqs.push((await db.query(`select seq::int from chainlog.append('E', 'X', 'ahead')`)).rows[0].seq);
    expect(seqs).toEqual([4, 5, 7]);
    await db.query(five);
    expect((await db.query(`select head_seq::int from chainlog.streams where stream = 'ahead'`)).rows).toEqual([{ head_seq: 12 }]);
    expect((await db.query(`select ok from chainlog.verify('ahead')`)).rows).toEqual([{ ok: false }]);
  });

  it('an event carried just below the seq limit does not stop the stream: the next event takes the first free seq after the head', async () => {
    await seedStream(db.pool, 'near-limit', 2);
    await asWriter(carryHead('near-limit', `repeat('00', 32) || '9007199254740990'`),
      `insert into chainlog.events (stream, event_type, action) values ('near-limit', 'STRAY', 'X')`);
    for (const seq of [3, 4]) {
      expect((await db.query(`select seq::text from chainlog.append('E', 'CREATE', 'near-limit')`)).rows).toEqual([{ seq: String(seq) }]);
    }
    expect((await db.query(`select ok from chainlog.verify('near-limit')`)).rows).toEqual([{ ok: false }]);
  });

  it('nor do transactions of several events: the head recorded at their commit is their own last event, not one stored beyond it', async () => {
    await seedStream(db.pool, 'near-limit-many', 2);
    const stray = [carryHead('near-limit-many', `repeat('00', 32) || '9007199254740990'`),
      `insert into chainlog.events (stream, event_type, action) values ('near-limit-many', 'STRAY', 'X')`];
    const two = `insert into chainlog.events (stream, event_type, action) select 'near-limit-many', 'E', 'X' from generate_series(1, 2)`;
    const head = async () => (await db.query(`select head_seq::text as seq from chainlog.streams where stream = 'near-limit-many'`)).rows[0].seq;
    await asWriter(...stray);
    await db.query(two);
    expect(await head()).toBe('4');
    // A writer alone, in one transaction: a stray event, then two of its own (with the carried head it
    // set by hand cleared, or they would follow the stray and fail the seq limit).
    await asWriter(carryHead('near-limit-many', `repeat('00', 32) || '9007199254740989'`), stray[1]!,
      `select set_config('chainlog.head_stream', '', true)`, two);
    expect(await head()).toBe('6');
    expect((await db.query(`select seq::text from chainlog.append('E', 'CREATE', 'near-limit-many')`)).rows).toEqual([{ seq: '7' }]);
    expect((await db.query(`select ok, problem from chainlog.verify('near-limit-many')`)).rows).toEqual([{ ok: false, problem: 'inserted' }]);
  });

  it('an admin cannot place a maintenance record on a head carried by hand: begin_maintenance() claims the stream itself', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query('set local role chainlog_admin');
    await client.query(carryHead('chainlog.maintenance', `repeat('00', 32) || '9007199254740990'`));
    await client.query(`select chainlog.begin_maintenance('placed by hand?')`);
    await client.query('commit');
    await client.end();
    const { rows } = await db.query(
      `select (select max(seq) from chainlog.events where stream = 'chainlog.maintenance') < 1000 as low, v.ok
         from chainlog.verify('chainlog.maintenance') v`);
    expect(rows).toEqual([{ low: true, ok: true }]);
  });

  it('cannot carry a stream to a seq beyond 2^53, where the offline verifiers could no longer read it', async () => {
    await seedStream(db.pool, 'far', 1);
    await expect(asWriter(carryHead('far', `repeat('00', 32) || '9007199254740991'`),
      `insert into chainlog.events (stream, event_type, action) values ('far', 'E', 'X')`))
      .rejects.toMatchObject({ code: '23514', constraint: 'events_seq_in_range' });
    expect((await db.query(`select max(seq)::int as seq from chainlog.events where stream = 'far'`)).rows).toEqual([{ seq: 1 }]);
  });

  it('the same for a new stream: events stored without a head row do not take its first seqs away', async () => {
    await asWriter(carryHead('fresh', `repeat('00', 32) || '0'`),
      `insert into chainlog.events (stream, event_type, action) select 'fresh', 'POISON', 'X' from generate_series(1, 2)`);
    expect((await db.query(`select seq::int from chainlog.append('E', 'CREATE', 'fresh')`)).rows).toEqual([{ seq: 3 }]);
    // Not absorbed: the new event claims the genesis hash again, so the stream stays reported broken there.
    const { rows } = await db.query(`select ok, first_bad_seq::int from chainlog.verify('fresh')`);
    expect(rows[0].ok).toBe(false);
    expect(rows[0].first_bad_seq).toBeLessThanOrEqual(3);
  });

  it('a tail cut off behind the recorded head stays a gap: the next event is chained on the recorded head, not on what is left', async () => {
    await seedStream(db.pool, 'cut', 10);
    await asAttacker(db.pool, `delete from chainlog.events where stream = 'cut' and seq > 8`);
    expect((await db.query(`select seq::int from chainlog.append('E', 'CREATE', 'cut')`)).rows).toEqual([{ seq: 11 }]);
    expect((await db.query(`select first_bad_seq::int, problem, detail from chainlog.verify('cut')`)).rows)
      .toEqual([{ first_bad_seq: 9, problem: 'deleted', detail: 'events 9..10 are missing' }]);
  });
});

describe('look-alike types in the temporary schema', () => {
  // Any role may create types in its session's pg_temp, which PostgreSQL searches first for type names
  // unless search_path names it. A domain called pg_temp.text whose CHECK calls the role's own function
  // would run that function wherever chainlog code says `text` without its schema: inside a SECURITY
  // DEFINER function, with the owner's rights (here a superuser's).
  const SHADOWED = ['text', 'bytea', 'tid', 'inet', 'timestamptz', 'jsonb', 'xid8'];

  /** Runs `statements` as `role` in one committed transaction on a new session that has the traps. */
  async function withTraps(role: string, statements: string[]): Promise<void> {
    const client = await db.connect();
    try {
      await client.query('begin');
      await client.query(`set local role ${role}`);
      await client.query(`
        create function pg_temp.trap() returns boolean language plpgsql as $$
        begin
          if current_user <> '${role}' then
            raise exception 'pg_temp code ran as % (session role ${role})', current_user;
          end if;
          return true;
        end $$`);
      for (const type of SHADOWED) await client.query(`create domain pg_temp.${type} as pg_catalog.${type} check (pg_temp.trap())`);
      for (const sql of statements) await client.query(sql);
      await client.query('commit');
    } finally {
      await client.end();
    }
  }

  it('never run with chainlog\'s rights: not for a reader, a writer or an admin', async () => {
    await db.query(`select chainlog.append('E', 'CREATE', 'trap-read')`);
    await withTraps('chainlog_reader', [
      `select * from chainlog.verify('trap-read')`,
      `select * from chainlog.verify_all()`,
      `select * from chainlog.streams`,
    ]);
    await withTraps('chainlog_writer', [
      // A new stream, then the same stream again (the head is marked pending, then carried) and the
      // settle at commit: every path of the chain trigger.
      `insert into chainlog.events (stream, event_type, action) values ('trap-write', 'E', 'CREATE')`,
      `insert into chainlog.events (stream, event_type, action, payload, source_ip)
       select 'trap-write', 'E', 'UPDATE', jsonb_build_object('n', g), '203.0.113.7' from generate_series(1, 3) g`,
      `select * from chainlog.append('E', 'CREATE', 'trap-write')`,
    ]);
    // The admin's own insert compiles the chain trigger in this session first; begin_maintenance() then
    // runs that same compiled trigger with the owner's rights.
    await withTraps('chainlog_admin', [
      `insert into chainlog.events (stream, event_type, action) values ('trap-admin', 'E', 'CREATE')`,
      `select chainlog.begin_maintenance('trap test')`,
    ]);
    const { rows } = await db.query(`select ok, checked::int from chainlog.verify('trap-write')`);
    expect(rows).toEqual([{ ok: true, checked: 5 }]);
  });
});

describe('operators of a schema of the writer\'s own', () => {
  // The chain trigger has no SET clause (it runs per row), so it resolves operators with the caller's
  // search_path. A writer that may create in some schema can put an "=" of its own before pg_catalog.
  it('cannot wave an empty event_type, action or actor through the chain trigger\'s checks', async () => {
    await db.query(`create schema mine;
      grant usage on schema mine to chainlog_writer;
      create function mine.never(text, text) returns boolean language sql immutable return false;
      create function mine.always(text, text) returns boolean language sql immutable return true;
      create operator mine.= (leftarg = text, rightarg = text, function = mine.never);
      create operator mine.<> (leftarg = text, rightarg = text, function = mine.always);`);
    // A new session, so that the trigger's statements are parsed under this search_path.
    const client = await db.connect();
    try {
      await client.query('set search_path = mine, pg_catalog');
      await client.query('set role chainlog_writer');
      expect((await client.query(`select 'a' = 'a' as mine`)).rows).toEqual([{ mine: false }]);
      for (const [field, row] of [
        ['event_type', `'ops', '', 'CREATE', null`],
        ['action', `'ops', 'E', '', null`],
        ['actor', `'ops', 'E', 'CREATE', ''`],
      ] as const) {
        await expect(client.query(`insert into chainlog.events (stream, event_type, action, actor) values (${row})`), field)
          .rejects.toMatchObject({ code: 'LC002', message: expect.stringContaining(field) });
      }
      // An empty chainlog.actor still counts as unset.
      await client.query('begin');
      await client.query(`set local chainlog.actor = ''`);
      const { rows } = await client.query(`insert into chainlog.events (stream, event_type, action) values ('ops', 'E', 'CREATE') returning actor`);
      await client.query('commit');
      expect(rows).toEqual([{ actor: (await client.query('select session_user::text as u')).rows[0].u }]);
    } finally {
      await client.end();
    }
  });
});

describe('DDL that would switch the protection off (event triggers, installed by a superuser)', () => {
  it.each([
    ['disabling the chain trigger', 'alter table chainlog.events disable trigger zz_chainlog_chain'],
    ['disabling all triggers', 'alter table chainlog.events disable trigger all'],
    ['making the append-only trigger replica-only', 'alter table chainlog.events enable replica trigger events_append_only'],
    ['dropping the append-only trigger', 'drop trigger events_append_only on chainlog.events'],
    ['dropping the events table', 'drop table chainlog.events cascade'],
    ['dropping the schema', 'drop schema chainlog cascade'],
    ['dropping the verify function', 'drop function chainlog.verify(text, bigint)'],
    ['renaming the events table', 'alter table chainlog.events rename to events_old'],
    ['moving the recorded heads to another schema', 'alter table chainlog.stream_heads set schema public'],
    ['renaming the schema', 'alter schema chainlog rename to chainlog_old'],
    ['making the events table unlogged', 'alter table chainlog.events set unlogged'],
    ['dropping the identity that numbers the events', 'alter table chainlog.events alter column id drop identity'],
    ['letting writers choose event ids', 'alter table chainlog.events alter column id set generated by default'],
  ])('refuses %s with LC004, naming the maintenance path', async (_name, sql) => {
    await expect(db.query(sql)).rejects.toMatchObject({
      code: 'LC004',
      hint: expect.stringContaining('chainlog.begin_maintenance'),
    });
    const { rows } = await db.query(
      `select count(*)::int as n from pg_trigger where tgrelid = 'chainlog.events'::regclass and not tgisinternal and tgenabled = 'O'`,
    );
    expect(rows[0].n).toBe(3);
  });

  it('allows it inside a maintenance window, and records who opened it and why', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query(`select chainlog.begin_maintenance('rebuild trigger for the test')`);
    await client.query('alter table chainlog.events disable trigger events_append_only');
    await client.query('alter table chainlog.events enable trigger events_append_only');
    await client.query('commit');
    const { rows } = await db.query(
      `select event_type, payload->>'reason' as reason from chainlog.events where stream = 'chainlog.maintenance' order by seq desc limit 1`,
    );
    expect(rows).toEqual([{ event_type: 'CHAINLOG_MAINTENANCE_BEGAN', reason: 'rebuild trigger for the test' }]);
  });

  it('a maintenance window ends with its transaction', async () => {
    const client = await db.connect();
    await client.query('begin');
    await client.query(`select chainlog.begin_maintenance('short')`);
    await client.query('commit');
    await expect(client.query('alter table chainlog.events disable trigger all')).rejects.toMatchObject({ code: 'LC004' });
  });

  it('begin_maintenance needs a reason', async () => {
    await expect(db.query(`select chainlog.begin_maintenance('  ')`)).rejects.toMatchObject({ code: 'LC006' });
  });

  it('leaves ALTER TABLE working for roles that have no access to schema chainlog', async () => {
    const role = `chainlog_test_app_${randomBytes(3).toString('hex')}`;
    const { rows } = await db.query('select current_database() as name');
    await db.query(`create role ${role}; create schema ${role} authorization ${role}; grant create, temporary on database "${rows[0].name}" to ${role}`);
    const client = await db.connect();
    try {
      await client.query(`set role ${role}`);
      await client.query(`create table ${role}.t (a int); alter table ${role}.t add column b int`);
      await client.query('create temporary table t_temp (a int); alter table t_temp add column b int; drop table t_temp');
      await client.query(`alter schema ${role} rename to ${role}_renamed; alter schema ${role}_renamed rename to ${role}`);
      // A table, trigger and function of its own named like chainlog's are not taken for chainlog's.
      await client.query(`create table ${role}.decoy (x int);
        create function ${role}._chain_event() returns trigger language plpgsql as $$ begin return new; end $$;
        create trigger zz_chainlog_chain before insert on ${role}.decoy for each row execute function ${role}._chain_event();
        alter table ${role}.decoy disable trigger zz_chainlog_chain`);
      await client.query('reset role');
      await db.query(`create table public.app_${role} (x int); alter table public.app_${role} add column y int; drop table public.app_${role}`);
    } finally {
      await client.query('reset role');
      await db.query(`drop schema ${role} cascade; revoke create, temporary on database "${rows[0].name}" from ${role}; drop role ${role}`);
    }
  });
});

describe('privileges', () => {
  it('an install takes back what default privileges gave other roles on chainlog\'s objects', async () => {
    const role = `chainlog_test_svc_${randomBytes(3).toString('hex')}`;
    const url = databaseUrl(await createEmptyDatabase());
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`create role ${role}`);
      for (const kind of ['tables', 'sequences', 'functions', 'types', 'schemas']) {
        await client.query(`alter default privileges grant all on ${kind} to ${role}`);
      }
      await client.query(`alter default privileges grant all on tables to public`);
      await migrate({ client });
      await client.query(`grant chainlog_writer to ${role}`);
      const { rows } = await client.query(
        `select has_table_privilege($1, 'chainlog.events', 'UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES') as events,
                has_table_privilege($1, 'chainlog.stream_heads', 'SELECT, INSERT, UPDATE, DELETE, TRIGGER') as heads,
                has_table_privilege('public', 'chainlog.events', 'SELECT') as public_reads,
                has_function_privilege($1, 'chainlog.begin_maintenance(text)', 'EXECUTE') as maintenance,
                has_schema_privilege($1, 'chainlog', 'CREATE') as creates`,
        [role],
      );
      expect(rows).toEqual([{ events: false, heads: false, public_reads: false, maintenance: false, creates: false }]);
      // What chainlog_writer is for still works.
      await client.query(`set role ${role}`);
      await client.query(`select chainlog.append('E', 'CREATE', 'svc')`);
      await expect(client.query(`create trigger aa_rewrite before insert on chainlog.events for each row execute function chainlog._refuse_change()`))
        .rejects.toMatchObject({ code: '42501' });
    } finally {
      await client.query('reset role').catch(() => {});
      await client.end();
      const admin = new pg.Client({ connectionString: databaseUrl('postgres') });
      await admin.connect();
      await admin.query(`drop database if exists ${new URL(url).pathname.slice(1)} with (force)`).catch(() => {});
      await admin.query(`drop role if exists ${role}`).catch(() => {});
      await admin.end();
    }
  });
});

describe('documentation in the catalog', () => {
  it('every public chainlog function and view has a COMMENT that \\df+ and \\dv+ show', async () => {
    const { rows } = await db.query(
      `select p.oid::regprocedure::text as name from pg_proc p
        where p.pronamespace = 'chainlog'::regnamespace and p.proname not like '\\_%'
          and obj_description(p.oid, 'pg_proc') is null
       union all
       select c.oid::regclass::text from pg_class c
        where c.relnamespace = 'chainlog'::regnamespace and c.relkind in ('v', 'r') and c.relname not like '\\_%'
          and c.relname <> 'migrations' and obj_description(c.oid, 'pg_class') is null`,
    );
    expect(rows.map((r) => r.name)).toEqual([]);
  });
});
