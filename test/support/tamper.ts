// The attacker's toolbox: a superuser who bypasses chainlog's triggers with
// session_replication_role = replica and edits chainlog.events directly. Each scenario knows which
// problem kind and first_bad_seq chainlog.verify() (and the offline verifier) must report.
import type pg from 'pg';
import type { VerifyReport } from '../../src/offline-verify.js';

type Db = Pick<pg.Client, 'query'>;

/** chainlog.verify() of a stream, in the report shape of verifyOffline(), to compare the two. */
export async function sqlVerifyReport(db: Db, stream: string, upToSeq?: number): Promise<VerifyReport> {
  const { rows } = await db.query(
    'select ok, checked::int, first_bad_seq::int, problem, detail from chainlog.verify($1, $2)',
    [stream, upToSeq ?? null],
  );
  const r = rows[0];
  return { stream, ok: r.ok, checked: r.checked, firstBadSeq: r.first_bad_seq, problem: r.problem, detail: r.detail };
}

/** Appends `count` events to `stream` through the normal path (the chain trigger). */
export async function seedStream(db: Db, stream: string, count: number): Promise<void> {
  await db.query(
    `insert into chainlog.events (stream, actor, event_type, action, resource_type, resource_id, payload)
     select $1, 'seed@example.com', 'RECORD_UPDATED', 'UPDATE', 'record', g::text,
            jsonb_build_object('n', g, 'note', 'seed event ' || g)
       from generate_series(1, $2::int) g`,
    [stream, count],
  );
}

/**
 * Runs `sql` with chainlog's triggers bypassed, as a superuser attacker would. One simple-protocol
 * query string, so it runs on one connection even when `db` is a pool, and all of it or nothing.
 */
export async function asAttacker(db: Db, sql: string): Promise<void> {
  await db.query(`begin; set local session_replication_role = replica; ${sql}; commit;`).catch(async (e) => {
    await db.query('rollback').catch(() => {});
    throw e;
  });
}

// Recomputes an event's hash from its (already tampered) row, as a careful attacker would.
const RECOMPUTED_HASH = `sha256(chainlog.canonical_bytes(format_version, prev_hash, seq, recorded_at, data_digest,
  stream, occurred_at, actor, actor_type, event_type, action, result, resource_type, resource_id, source_ip, request_id))`;

/** SQL changing event 10 (the last of a 10-event stream) and recomputing its hash to match. */
function lastEventRewritten(s: string): string {
  return `update chainlog.events set actor = 'mallory' where stream = '${s}' and seq = 10;
          update chainlog.events set hash = ${RECOMPUTED_HASH} where stream = '${s}' and seq = 10`;
}

/**
 * SQL inserting a forged event at `seq`, copying stream and recorded_at from the event at `fromSeq`.
 * `prev` names the column of that event used as prev_hash: 'hash' links to it, 'prev_hash' claims its
 * predecessor (a fork). With `wellFormed`, the forged event's digest and hash are computed correctly.
 */
function forgedEvent(s: string, seq: number, fromSeq: number, prev: 'hash' | 'prev_hash', wellFormed: boolean): string {
  return `insert into chainlog.events (stream, seq, recorded_at, actor, actor_type, event_type, action, result,
                                      format_version, data_digest, prev_hash, hash)
         select stream, ${seq}, recorded_at, 'mallory', 'user', 'FORGED', 'CREATE', 'success',
                1, ${wellFormed ? 'chainlog.data_digest(null, null, null)' : 'data_digest'}, ${prev}, sha256('forged')
           from chainlog.events where stream = '${s}' and seq = ${fromSeq}` +
    (wellFormed ? `;\n         update chainlog.events set hash = ${RECOMPUTED_HASH} where stream = '${s}' and seq = ${seq}` : '');
}

/** SQL exchanging the seq of two events of stream `s` (through a free seq, since (stream, seq) is unique). */
function swapped(s: string, a: number, b: number): string {
  return `update chainlog.events set seq = 1000 where stream = '${s}' and seq = ${a};
         update chainlog.events set seq = ${a} where stream = '${s}' and seq = ${b};
         update chainlog.events set seq = ${b} where stream = '${s}' and seq = 1000`;
}

/**
 * SQL moving the event at seq `from` to seq `to`, the events between renumbered by one to make room
 * (through free seqs, since (stream, seq) is unique).
 */
function moved(s: string, from: number, to: number): string {
  const [lo, hi, step] = from < to ? [from + 1, to, -1] : [to, from - 1, 1];
  return `update chainlog.events set seq = 1000 where stream = '${s}' and seq = ${from};
         update chainlog.events set seq = seq + 1000 where stream = '${s}' and seq between ${lo} and ${hi};
         update chainlog.events set seq = seq - 1000 + ${step} where stream = '${s}' and seq between ${lo + 1000} and ${hi + 1000};
         update chainlog.events set seq = ${to} where stream = '${s}' and seq = 1000`;
}

/** SQL moving every event up by `n` seqs from seq `from` on (through free seqs, since (stream, seq) is unique). */
function renumberedUp(s: string, from: number, n: number): string {
  return `update chainlog.events set seq = seq + 1000 where stream = '${s}' and seq >= ${from};
         update chainlog.events set seq = seq - 1000 + ${n} where stream = '${s}' and seq >= ${from + 1000}`;
}

/** SQL deleting events `from`..`to` and moving the later ones down to close the gap. */
function deletedAndRenumbered(s: string, from: number, to: number): string {
  return `delete from chainlog.events where stream = '${s}' and seq between ${from} and ${to};
         update chainlog.events set seq = seq + 1000 where stream = '${s}' and seq > ${to};
         update chainlog.events set seq = seq - 1000 - ${to - from + 1} where stream = '${s}' and seq > 1000`;
}

/** SQL moving events 5.. up by one and putting a forged event linked to event 4 at seq 5. */
function insertedAt5(s: string, wellFormed: boolean): string {
  return `${renumberedUp(s, 5, 1)};
         ${forgedEvent(s, 5, 4, 'hash', wellFormed)}`;
}

/**
 * SQL recomputing every prev_hash and hash of `stream` from `fromSeq` to its end, and the recorded head:
 * the careful superuser that only a checkpoint kept outside the database catches.
 */
export const chainRecomputedFrom = (stream: string, fromSeq: number) => `
  do $$
  declare s bigint;
  begin
    for s in select seq from chainlog.events where stream = '${stream}' and seq >= ${fromSeq} order by seq loop
      update chainlog.events e set prev_hash = (select p.hash from chainlog.events p where p.stream = e.stream and p.seq = s - 1)
       where e.stream = '${stream}' and e.seq = s;
      update chainlog.events set hash = ${RECOMPUTED_HASH} where stream = '${stream}' and seq = s;
    end loop;
  end $$;
  update chainlog.stream_heads h set head_seq = e.seq, head_hash = e.hash
    from chainlog.events e
   where h.stream = '${stream}' and e.stream = h.stream and e.seq = (select max(seq) from chainlog.events where stream = '${stream}')`;

export interface TamperScenario {
  name: string;
  /** Stream length the scenario expects (seed with seedStream first). */
  length: number;
  /** Does the tampering on `stream`. */
  apply: (db: Db, stream: string) => Promise<void>;
  /** checked: the events before the first problem, firstBadSeq - 1 unless given. */
  expected: { problem: string; firstBadSeq: number; checked?: number };
}

/** Every kind of tampering verify() names, on a stream of 10 events. */
export const scenarios: TamperScenario[] = [
  {
    name: 'a field of event 4 is changed',
    length: 10,
    apply: (db, s) => asAttacker(db, `update chainlog.events set actor = 'mallory' where stream = '${s}' and seq = 4`),
    expected: { problem: 'modified', firstBadSeq: 4 },
  },
  {
    name: 'the payload of event 6 is changed',
    length: 10,
    apply: (db, s) =>
      asAttacker(db, `update chainlog.events set payload = '{"n": 600}' where stream = '${s}' and seq = 6`),
    expected: { problem: 'modified', firstBadSeq: 6 },
  },
  {
    name: 'event 5 is changed and its digest and hash recomputed',
    length: 10,
    apply: (db, s) =>
      asAttacker(
        db,
        `update chainlog.events set payload = '{"n": 500}', data_digest = chainlog.data_digest('{"n": 500}', before, after)
          where stream = '${s}' and seq = 5;
         update chainlog.events set hash = ${RECOMPUTED_HASH} where stream = '${s}' and seq = 5`,
      ),
    expected: { problem: 'modified', firstBadSeq: 5 },
  },
  {
    name: 'the last event is changed and its hash recomputed',
    length: 10,
    apply: (db, s) => asAttacker(db, lastEventRewritten(s)),
    expected: { problem: 'modified', firstBadSeq: 10 },
  },
  {
    name: 'the last event is changed, its hash recomputed and the recorded head marked pending to excuse it',
    length: 10,
    apply: (db, s) =>
      asAttacker(db, `${lastEventRewritten(s)}; update chainlog.stream_heads set pending = true where stream = '${s}'`),
    expected: { problem: 'modified', firstBadSeq: 10 },
  },
  {
    name: 'event 3 is deleted',
    length: 10,
    apply: (db, s) => asAttacker(db, `delete from chainlog.events where stream = '${s}' and seq = 3`),
    expected: { problem: 'deleted', firstBadSeq: 3 },
  },
  {
    name: 'events 3 and 4 are deleted',
    length: 10,
    apply: (db, s) => asAttacker(db, `delete from chainlog.events where stream = '${s}' and seq in (3, 4)`),
    expected: { problem: 'deleted', firstBadSeq: 3 },
  },
  {
    name: 'the first event is deleted',
    length: 10,
    apply: (db, s) => asAttacker(db, `delete from chainlog.events where stream = '${s}' and seq = 1`),
    expected: { problem: 'deleted', firstBadSeq: 1 },
  },
  {
    name: 'event 3 is deleted and later events renumbered to hide the gap',
    length: 10,
    apply: (db, s) =>
      asAttacker(db, deletedAndRenumbered(s, 3, 3)),
    expected: { problem: 'deleted', firstBadSeq: 3 },
  },
  {
    name: 'events 5 and 6 are deleted and later events renumbered to hide the gap',
    length: 10,
    apply: (db, s) => asAttacker(db, deletedAndRenumbered(s, 5, 6)),
    expected: { problem: 'deleted', firstBadSeq: 5 },
  },
  {
    name: 'the first three events are deleted and later events renumbered to hide the gap',
    length: 10,
    apply: (db, s) => asAttacker(db, deletedAndRenumbered(s, 1, 3)),
    expected: { problem: 'deleted', firstBadSeq: 1 },
  },
  {
    name: 'event 3 is moved to the end and the events after it renumbered',
    length: 10,
    apply: (db, s) => asAttacker(db, moved(s, 3, 10)),
    expected: { problem: 'reordered', firstBadSeq: 3 },
  },
  {
    name: 'event 7 is moved to seq 2 and the events between renumbered',
    length: 10,
    apply: (db, s) => asAttacker(db, moved(s, 7, 2)),
    expected: { problem: 'reordered', firstBadSeq: 2 },
  },
  {
    name: 'the last three events are deleted',
    length: 10,
    apply: (db, s) => asAttacker(db, `delete from chainlog.events where stream = '${s}' and seq > 7`),
    expected: { problem: 'truncated', firstBadSeq: 8 },
  },
  {
    name: 'events 4 and 5 swap places',
    length: 10,
    apply: (db, s) =>
      asAttacker(
        db,
        swapped(s, 4, 5),
      ),
    expected: { problem: 'reordered', firstBadSeq: 4 },
  },
  {
    name: 'events 2 and 7 swap places',
    length: 10,
    apply: (db, s) =>
      asAttacker(
        db,
        swapped(s, 2, 7),
      ),
    expected: { problem: 'reordered', firstBadSeq: 2 },
  },
  {
    name: 'a forged event is inserted at seq 5 and later events renumbered',
    length: 10,
    apply: (db, s) =>
      asAttacker(
        db,
        insertedAt5(s, false),
      ),
    expected: { problem: 'inserted', firstBadSeq: 5 },
  },
  {
    name: 'a well-formed forged event is inserted at seq 5 and later events renumbered',
    length: 10,
    apply: (db, s) =>
      asAttacker(
        db,
        insertedAt5(s, true),
      ),
    expected: { problem: 'inserted', firstBadSeq: 5 },
  },
  {
    name: 'two well-formed forged events are inserted at seq 5 and 6 and later events renumbered',
    length: 10,
    apply: (db, s) =>
      asAttacker(
        db,
        `${renumberedUp(s, 5, 2)};
         ${forgedEvent(s, 5, 4, 'hash', true)};
         ${forgedEvent(s, 6, 5, 'hash', true)}`,
      ),
    expected: { problem: 'inserted', firstBadSeq: 5 },
  },
  {
    name: 'a well-formed forged first event is inserted and later events renumbered',
    length: 10,
    // Copying prev_hash from the genuine first event, now at seq 2, gives the forged one the genesis hash.
    apply: (db, s) => asAttacker(db, `${renumberedUp(s, 1, 1)}; ${forgedEvent(s, 1, 2, 'prev_hash', true)}`),
    expected: { problem: 'inserted', firstBadSeq: 1 },
  },
  {
    name: 'a forged event is appended after the recorded head',
    length: 10,
    apply: (db, s) =>
      asAttacker(
        db,
        forgedEvent(s, 11, 10, 'hash', true),
      ),
    expected: { problem: 'inserted', firstBadSeq: 11 },
  },
  {
    name: 'a well-formed forged event is stored after a gap beyond the recorded head',
    length: 10,
    apply: (db, s) => asAttacker(db, forgedEvent(s, 14, 10, 'hash', true)),
    expected: { problem: 'inserted', firstBadSeq: 14, checked: 10 },
  },
  {
    name: 'a copy of the last event is appended after the recorded head',
    length: 10,
    apply: (db, s) =>
      asAttacker(
        db,
        `insert into chainlog.events (stream, seq, recorded_at, occurred_at, actor, actor_type, event_type, action, result,
                                      resource_type, resource_id, source_ip, request_id, payload, before, after,
                                      format_version, data_digest, prev_hash, hash)
         select stream, 11, recorded_at, occurred_at, actor, actor_type, event_type, action, result,
                resource_type, resource_id, source_ip, request_id, payload, before, after,
                format_version, data_digest, prev_hash, hash
           from chainlog.events where stream = '${s}' and seq = 10`,
      ),
    expected: { problem: 'inserted', firstBadSeq: 11 },
  },
  {
    name: 'a second event claims event 9 as its predecessor (a fork)',
    length: 10,
    apply: (db, s) =>
      asAttacker(
        db,
        `${forgedEvent(s, 11, 10, 'prev_hash', true)};
         update chainlog.stream_heads h set head_seq = 11, head_hash = e.hash
           from chainlog.events e where e.stream = h.stream and e.seq = 11 and h.stream = '${s}'`,
      ),
    expected: { problem: 'forked', firstBadSeq: 11 },
  },
];
