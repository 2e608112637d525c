import { describe, expect, it } from 'vitest';
import { useChainlogDatabase } from './support/db.js';
import { asAttacker, scenarios, seedStream } from './support/tamper.js';

const db = useChainlogDatabase();

async function verify(stream: string, upToSeq?: number) {
  const { rows } = await db.query(
    'select ok, checked::int, first_bad_seq::int, problem, detail from chainlog.verify($1, $2)',
    [stream, upToSeq ?? null],
  );
  return rows[0];
}

describe('chainlog.verify()', () => {
  it('reports an intact stream as ok with every event checked', async () => {
    await seedStream(db.pool, 'intact', 25);
    expect(await verify('intact')).toEqual({ ok: true, checked: 25, first_bad_seq: null, problem: null, detail: null });
  });

  it('verifies a prefix of the stream with up_to_seq', async () => {
    await seedStream(db.pool, 'prefix', 10);
    expect(await verify('prefix', 4)).toMatchObject({ ok: true, checked: 4 });
  });

  it('with up_to_seq, events missing within it are deleted, not cut off, when the stream goes on past it', async () => {
    await seedStream(db.pool, 'gap-within', 10);
    await asAttacker(db.pool, `delete from chainlog.events where stream = 'gap-within' and seq in (5, 6, 7)`);
    for (const upTo of [5, 6, 7, 8]) {
      expect(await verify('gap-within', upTo)).toEqual({
        ok: false, checked: 4, first_bad_seq: 5, problem: 'deleted', detail: 'events 5..7 are missing',
      });
    }
    expect(await verify('gap-within', 4)).toMatchObject({ ok: true, checked: 4 });
    // Without events after the gap it is the end of the stream that is gone.
    await seedStream(db.pool, 'cut-within', 10);
    await asAttacker(db.pool, `delete from chainlog.events where stream = 'cut-within' and seq > 7`);
    expect(await verify('cut-within', 9)).toMatchObject({ ok: false, checked: 7, first_bad_seq: 8, problem: 'truncated' });
  });

  it('refuses an unknown stream with LC005 and a hint', async () => {
    await expect(db.query(`select * from chainlog.verify('no-such-stream')`)).rejects.toMatchObject({
      code: 'LC005',
      hint: expect.stringContaining('chainlog.streams'),
    });
  });

  it('refuses a negative up_to_seq with LC006', async () => {
    await seedStream(db.pool, 'neg', 1);
    await expect(db.query(`select * from chainlog.verify('neg', -1)`)).rejects.toMatchObject({ code: 'LC006' });
  });

  describe('names the first broken event and the kind of tampering', () => {
    for (const [i, scenario] of scenarios.entries()) {
      it(`${scenario.name}: ${scenario.expected.problem} at seq ${scenario.expected.firstBadSeq}`, async () => {
        const stream = `tamper-${i}`;
        await seedStream(db.pool, stream, scenario.length);
        expect(await verify(stream)).toMatchObject({ ok: true });
        await scenario.apply(db.pool, stream);
        const report = await verify(stream);
        expect(report).toMatchObject({
          ok: false,
          problem: scenario.expected.problem,
          first_bad_seq: scenario.expected.firstBadSeq,
        });
        expect(report.detail).toBeTruthy();
        // checked counts the events before the first problem.
        expect(report.checked).toBe(scenario.expected.checked ?? scenario.expected.firstBadSeq - 1);
        // An up_to_seq past the end checks the same events and must report the same.
        expect(await verify(stream, scenario.length + 5)).toEqual(report);
      });
    }
  });

  it('reports ok inside the transaction that is appending to the stream', async () => {
    const client = await db.connect();
    await seedStream(client, 'own-tx', 2);
    await client.query('begin');
    await client.query(`select chainlog.append('E', 'CREATE', 'own-tx')`);
    const { rows } = await client.query(`select ok, checked::int from chainlog.verify('own-tx')`);
    await client.query('commit');
    expect(rows).toEqual([{ ok: true, checked: 3 }]);
  });

  it('an event moved to a stream of its own: that stream has no recorded head, the other is cut short', async () => {
    await seedStream(db.pool, 'moved-from', 5);
    await asAttacker(db.pool, `update chainlog.events set stream = 'moved-to' where stream = 'moved-from' and seq = 5`);
    const report = async (stream: string) =>
      (await db.query('select ok, first_bad_seq::int, problem, detail from chainlog.verify($1)', [stream])).rows[0];
    expect(await report('moved-to')).toEqual({
      ok: false, first_bad_seq: 1, problem: 'inserted', detail: 'stream has 1 events but no recorded head: they were written around chainlog',
    });
    expect(await report('moved-from')).toMatchObject({ ok: false, first_bad_seq: 5, problem: 'truncated' });
  });

  it('verify_all() reports every stream, the broken ones with their problem', async () => {
    const { rows } = await db.query(`select stream, ok, problem from chainlog.verify_all() where stream in ('intact', 'tamper-0')`);
    expect(rows).toEqual([
      { stream: 'intact', ok: true, problem: null },
      { stream: 'tamper-0', ok: false, problem: 'modified' },
    ]);
  });
});
