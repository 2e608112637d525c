// verifyOfflineFile() refuses what an export would not write (docs/FORMAT.md, "Exports"), also where the
// hashes would still pass: the cases of the offline-verifier review (scratch/review-offline.md, F1-F7).
// Every file here is a real export of events chained by the trigger, edited the way the review did.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainlogError, ChainlogFileFormatError, ChainlogInvalidArgumentError } from '../src/errors.js';
import { exportEvents } from '../src/export.js';
import { CSV_FORM, JSON_FORM, parseTimestamptz, toHex, writeInet, writeTimestamptz } from '../src/format.js';
import { verifyOfflineFile, type VerifyReport } from '../src/offline-verify.js';
import { useChainlogDatabase } from './support/db.js';
import { seedStream } from './support/tamper.js';

const db = useChainlogDatabase();
type Format = 'csv' | 'ndjson';
const FORMATS = ['csv', 'ndjson'] as const;

/** A stream exported into memory: its lines (no trailing empty one) and the head exportEvents() reports. */
async function exported(stream: string, format: Format, more: { fromSeq?: number } = {}) {
  const chunks: Buffer[] = [];
  const out = new PassThrough();
  out.on('data', (c: Buffer) => chunks.push(c));
  const result = await exportEvents({ db: db.pool, stream, format, output: out, ...more });
  return {
    lines: Buffer.concat(chunks).toString('utf8').trimEnd().split('\n'),
    expectedHead: { seq: result.headSeq, hash: result.headHash },
  };
}

type Options = Omit<Parameters<typeof verifyOfflineFile>[0], 'input' | 'path' | 'format'>;
const feed = (lines: string[] | Buffer, format: Format, options: Options = {}) =>
  verifyOfflineFile({ input: Readable.from([Buffer.isBuffer(lines) ? lines : Buffer.from(lines.join('\n') + '\n')]), format, ...options });

/** The call was refused with an error of class `type` and code `code`, not answered with a verdict. */
async function refusedWith<E extends Error>(promise: Promise<VerifyReport>, type: new (...args: never[]) => E, code: string): Promise<E> {
  const e = await promise.then(
    (report) => { throw new Error(`answered instead of refusing: ${JSON.stringify(report)}`); },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(type);
  expect(e).toMatchObject({ code });
  return e as E;
}

/** The file was refused as malformed (CHAINLOG_BAD_FILE), not verified. */
const refusal = (promise: Promise<VerifyReport>) => refusedWith(promise, ChainlogFileFormatError, 'CHAINLOG_BAD_FILE');

/** The call was refused for its arguments (CHAINLOG_INVALID_ARGUMENT), not answered with a verdict. */
const invalidArgument = (promise: Promise<VerifyReport>) => refusedWith(promise, ChainlogInvalidArgumentError, 'CHAINLOG_INVALID_ARGUMENT');

/** The lines with the one holding `marker` edited; the marker must be on exactly one line. */
function editLine(lines: string[], marker: string, fn: (line: string) => string): string[] {
  const at = lines.flatMap((l, i) => (l.includes(marker) ? [i] : []));
  expect(at, marker).toHaveLength(1);
  return lines.map((l, i) => (i === at[0] ? fn(l) : l));
}

/** Replaces `from` (which must be there) with `to` in the line. */
function replaced(from: string, to: string): (line: string) => string {
  return (line) => {
    expect(line, from).toContain(from);
    return line.replace(from, to);
  };
}

/** The marker of an event's line: its resource_id as each format writes it. */
const marker = (id: string, format: Format) => (format === 'csv' ? `,${id},` : `"resource_id":"${id}"`);

/** A timestamp as PostgreSQL's CSV text, in the JSON export's form. */
const json = (csv: string) => csv.replace(' ', 'T').replace(/\+00( BC)?$/, '+00:00$1');

// ---------------------------------------------------------------------------------------------
// The events: one of each kind of value the review edited, chained by the trigger.

const VALUES = 'strict-values';

async function addEvent(stream: string, e: Record<string, string | null>): Promise<void> {
  const columns = Object.keys(e);
  await db.query(
    `insert into chainlog.events (stream, event_type, action, ${columns.join(', ')})
     values ($1, 'X', 'CREATE', ${columns.map((_, i) => `$${i + 2}`).join(', ')})`,
    [stream, ...Object.values(e)],
  );
}

const files: Record<Format, { lines: string[]; expectedHead: { seq: number; hash: string } }> = {} as never;

beforeAll(async () => {
  await seedStream(db.pool, VALUES, 2);
  const events: Record<string, string | null>[] = [
    { resource_id: 'r-moon', occurred_at: '1969-07-20 20:17:40.5+00', actor: 'Zoe' },
    { resource_id: 'r-zed', occurred_at: null, actor: 'Zed' },
    { resource_id: 'r-feb30', occurred_at: '2024-03-01 11:59:59.999999+00' },
    { resource_id: 'r-h24', occurred_at: '2024-03-02 00:00:21.5+00' },
    { resource_id: 'r-s60', occurred_at: '2024-03-01 12:01:00+00' },
    { resource_id: 'r-noon', occurred_at: '2024-03-01 12:00:00+00' },
    { resource_id: 'r-bc', occurred_at: '0044-03-15 12:00:00+00 BC' },
    { resource_id: 'r-bc2', occurred_at: '0002-03-01 12:00:00+00 BC' },
    { resource_id: 'r-v4', source_ip: '203.0.113.7' },
    { resource_id: 'r-v4p', source_ip: '10.1.2.3/8' },
    { resource_id: 'r-v6', source_ip: '2001:db8::', request_id: ':abc' },
    { resource_id: 'r-v6b', source_ip: '2001:db8::1' },
    { resource_id: 'r-mapped', source_ip: '::ffff:192.0.2.128' },
    { resource_id: 'r-nulls', request_id: 'req-n', payload: null, before: null, after: null },
    { resource_id: 'r-json', payload: '{"a": 1}', before: '{"s": "open"}', after: '{"s": "paid"}' },
  ];
  for (const e of events) await addEvent(VALUES, e);
  await seedStream(db.pool, VALUES, 2);
  for (const format of FORMATS) files[format] = await exported(VALUES, format);
});

describe('the export of every kind of value verifies intact (nothing below is refused that an export writes)', () => {
  for (const format of FORMATS) {
    it(format, async () => {
      const { lines, expectedHead } = files[format];
      expect(await feed(lines, format, { expectedHead })).toEqual({
        stream: VALUES, ok: true, checked: 19, firstBadSeq: null, problem: null, detail: null,
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('F2: a timestamp PostgreSQL would not print is refused, though the hash still matches', () => {
  // [what, event, its occurred_at as exported (CSV), the same instant as PostgreSQL never prints it
  // (CSV; the JSON form is derived, or given when it differs more)]
  const cases: [string, string, string, string, string?][] = [
    ['30 February for 1 March', 'r-feb30', '2024-03-01 11:59:59.999999+00', '2024-02-30 11:59:59.999999+00'],
    ['29 February of 2 BC (not a leap year) for 1 March', 'r-bc2', '0002-03-01 12:00:00+00 BC', '0002-02-29 12:00:00+00 BC'],
    ['hour 24 for midnight', 'r-h24', '2024-03-02 00:00:21.5+00', '2024-03-01 24:00:21.5+00'],
    ['second 60 for the next minute', 'r-s60', '2024-03-01 12:01:00+00', '2024-03-01 12:00:60+00'],
    ['a 5-digit year with a leading zero', 'r-noon', '2024-03-01 12:00:00+00', '02024-03-01 12:00:00+00'],
    ['a dot with no fraction digits', 'r-noon', '2024-03-01 12:00:00+00', '2024-03-01 12:00:00.+00'],
    ['a fraction with a trailing zero', 'r-moon', '1969-07-20 20:17:40.5+00', '1969-07-20 20:17:40.50+00'],
    ['an offset beyond PostgreSQL\'s (+72, three days on)', 'r-noon', '2024-03-01 12:00:00+00', '2024-03-04 12:00:00+72', '2024-03-04T12:00:00+72:00'],
    ['another offset than UTC, which the export pins', 'r-noon', '2024-03-01 12:00:00+00', '2024-03-01 17:30:00+05:30', '2024-03-01T17:30:00+05:30'],
  ];
  for (const format of FORMATS) {
    for (const [what, id, from, to, jsonTo] of cases) {
      it(`${format}: ${what}`, async () => {
        const [f, t] = format === 'csv' ? [from, to] : [json(from), jsonTo ?? json(to)];
        const { lines, expectedHead } = files[format];
        const e = await refusal(feed(editLine(lines, marker(id, format), replaced(f, t)), format, { expectedHead }));
        expect(e, what).toMatchObject({ field: 'occurred_at' });
        expect(e.message, what).toMatch(/timestamptz/);
      });
    }
  }

  it('the form of the other format: CSV with "T" or "+00:00", NDJSON with " ", "+00" or "Z"', async () => {
    const csv = files.csv;
    for (const to of ['2024-03-01T12:00:00+00', '2024-03-01 12:00:00+00:00']) {
      await refusal(feed(editLine(csv.lines, marker('r-noon', 'csv'), replaced('2024-03-01 12:00:00+00', to)), 'csv', { expectedHead: csv.expectedHead }));
    }
    const nd = files.ndjson;
    for (const to of ['2024-03-01 12:00:00+00:00', '2024-03-01T12:00:00+00', '2024-03-01T12:00:00Z']) {
      await refusal(feed(editLine(nd.lines, marker('r-noon', 'ndjson'), replaced('"2024-03-01T12:00:00+00:00"', `"${to}"`)), 'ndjson', { expectedHead: nd.expectedHead }));
    }
  });

  it('a recorded_at 2^64 microseconds later or earlier (the same int64 once wrapped around) is out of range', async () => {
    for (const format of FORMATS) {
      const { lines, expectedHead } = files[format];
      const line = lines.find((l) => l.includes(marker('r-noon', format)))!;
      const recorded = format === 'csv'
        ? /,(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\+00),/.exec(line)![1]!
        : /"recorded_at":"([^"]+)"/.exec(line)![1]!;
      const micros = parseTimestamptz(recorded);
      for (const shifted of [micros + 2n ** 64n, micros - 2n ** 64n]) {
        const text = timestampText(shifted, format);
        const e = await refusal(feed(editLine(lines, marker('r-noon', format), replaced(recorded, text)), format, { expectedHead }));
        expect(e, `${format} ${text}`).toMatchObject({ field: 'recorded_at' });
        expect(e.message).toMatch(/out of PostgreSQL's range/);
      }
    }
  });
});

/** Microseconds since 2000 (any int64 and beyond) as PostgreSQL would print them in UTC, year unbounded. */
function timestampText(micros: bigint, format: Format): string {
  const day = 86_400_000_000n;
  let days = micros / day;
  let rest = micros % day;
  if (rest < 0n) {
    rest += day;
    days -= 1n;
  }
  // civil_from_days (H. Hinnant), from 1970-01-01.
  const z = Number(days) + 10957 + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  const pad = (n: number | bigint, w: number) => String(n).padStart(w, '0');
  const seconds = rest / 1_000_000n;
  const frac = rest % 1_000_000n;
  const time = `${pad(seconds / 3600n, 2)}:${pad((seconds / 60n) % 60n, 2)}:${pad(seconds % 60n, 2)}${frac ? `.${pad(frac, 6).replace(/0+$/, '')}` : ''}`;
  const bc = y <= 0;
  const text = `${pad(bc ? 1 - y : y, 4)}-${pad(m, 2)}-${pad(d, 2)} ${time}+00${bc ? ' BC' : ''}`;
  return format === 'csv' ? text : json(text);
}

describe('F3: no value is read past its end (the next value\'s first byte is not part of it)', () => {
  it('an occurred_at without its offset, followed by an actor starting with "Z", is refused', async () => {
    for (const format of FORMATS) {
      const { lines, expectedHead } = files[format];
      const [from, to] = format === 'csv' ? ['20:17:40.5+00,Zoe,', '20:17:40.5,Zoe,'] : ['20:17:40.5+00:00"', '20:17:40.5"'];
      const e = await refusal(feed(editLine(lines, marker('r-moon', format), replaced(from, to)), format, { expectedHead }));
      expect(e, format).toMatchObject({ field: 'occurred_at' });
    }
  });

  it('a recorded_at without its offset, followed by a NULL occurred_at and an actor starting with "Z", is refused', async () => {
    const { lines, expectedHead } = files.csv;
    const edited = editLine(lines, marker('r-zed', 'csv'), (l) => {
      expect(l).toMatch(/\+00,,Zed,/);
      return l.replace(/\+00,,Zed,/, ',,Zed,');
    });
    expect(await refusal(feed(edited, 'csv', { expectedHead }))).toMatchObject({ field: 'recorded_at' });
  });

  it('an IPv6 address ending in one ":", followed by a request_id starting with ":", is refused', async () => {
    for (const format of FORMATS) {
      const { lines, expectedHead } = files[format];
      const [from, to] = format === 'csv' ? ['2001:db8::,:abc,', '2001:db8:,:abc,'] : ['"2001:db8::"', '"2001:db8:"'];
      const e = await refusal(feed(editLine(lines, marker('r-v6', format), replaced(from, to)), format, { expectedHead }));
      expect(e, format).toMatchObject({ field: 'source_ip' });
    }
  });
});

describe('F7 and inet: only the text PostgreSQL prints for the address', () => {
  const cases: [string, string, string, string][] = [
    ['IPv4 parts with leading zeros (octal to inet_aton)', 'r-v4', '203.0.113.7', '0203.0.0113.07'],
    ['an IPv4 part and a prefix with leading zeros', 'r-v4p', '10.1.2.3/8', '010.1.2.3/08'],
    ['a prefix of /32, which PostgreSQL leaves out', 'r-v4', '203.0.113.7', '203.0.113.7/32'],
    ['uppercase IPv6', 'r-v6b', '2001:db8::1', '2001:DB8::1'],
    ['an IPv6 group with a leading zero', 'r-v6b', '2001:db8::1', '2001:0db8::1'],
    ['IPv6 zero groups written out', 'r-v6b', '2001:db8::1', '2001:db8:0:0:0:0:0:1'],
    ['an IPv4-mapped address in hex', 'r-mapped', '::ffff:192.0.2.128', '::ffff:c000:280'],
  ];
  for (const format of FORMATS) {
    for (const [what, id, from, to] of cases) {
      it(`${format}: ${what}`, async () => {
        const { lines, expectedHead } = files[format];
        const [f, t] = format === 'csv' ? [`,${from},`, `,${to},`] : [`"${from}"`, `"${to}"`];
        const e = await refusal(feed(editLine(lines, marker(id, format), replaced(f, t)), format, { expectedHead }));
        expect(e, what).toMatchObject({ field: 'source_ip' });
      });
    }
  }
});

describe('F6: CSV "" in payload, before or after (jsonb is never empty; NULL is the unquoted empty field)', () => {
  for (const [column, to] of [['payload', ',req-n,"",,,1,'], ['before', ',req-n,,"",,1,'], ['after', ',req-n,,,"",1,']] as const) {
    it(column, async () => {
      const { lines, expectedHead } = files.csv;
      const e = await refusal(feed(editLine(lines, marker('r-nulls', 'csv'), replaced(',req-n,,,,1,', to)), 'csv', { expectedHead }));
      expect(e).toMatchObject({ field: column });
      expect(e.message).toMatch(/empty/);
    });
  }
});

describe('hashes only as the export writes them', () => {
  it('NDJSON: plain lowercase hex (no uppercase, no "\\x")', async () => {
    const { lines, expectedHead } = files.ndjson;
    for (const fn of [(h: string) => h.toUpperCase(), (h: string) => `\\\\x${h}`]) {
      const edited = editLine(lines, marker('r-nulls', 'ndjson'), (l) => l.replace(/"hash":"([0-9a-f]{64})"/, (_, h: string) => `"hash":"${fn(h)}"`));
      expect(await refusal(feed(edited, 'ndjson', { expectedHead }))).toMatchObject({ field: 'hash' });
    }
  });

  it('CSV: "\\x" and lowercase hex, as PostgreSQL prints a bytea', async () => {
    const { lines, expectedHead } = files.csv;
    for (const fn of [(h: string) => h, (h: string) => `\\x${h.toUpperCase()}`]) {
      const edited = editLine(lines, marker('r-nulls', 'csv'), (l) => l.replace(/\\x([0-9a-f]{64})$/, (_, h: string) => fn(h)));
      expect(await refusal(feed(edited, 'csv', { expectedHead }))).toMatchObject({ field: 'hash' });
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('F1: with `stream`, rows of other streams are read as strictly as the stream\'s own, and reported', () => {
  const CAFE = 'caf\u00e9'; // NFC
  const CAFE_NFD = 'cafe\u0301';

  beforeAll(async () => {
    await seedStream(db.pool, 'mix-o', 3);
    await seedStream(db.pool, 'mix-a', 4);
    await seedStream(db.pool, CAFE, 2);
  });

  /** `cat mix-o mix-a`, one CSV header. */
  async function both(format: Format): Promise<string[]> {
    const other = (await exported('mix-o', format)).lines;
    const acme = (await exported('mix-a', format)).lines;
    return format === 'csv' ? [...other, ...acme.slice(1)] : [...other, ...acme];
  }

  it('the report counts the rows of other streams and names their streams', async () => {
    for (const format of FORMATS) {
      const lines = await both(format);
      expect(await feed(lines, format, { stream: 'mix-a' }), format).toEqual({
        stream: 'mix-a', ok: true, checked: 4, firstBadSeq: null, problem: null, detail: null, skipped: { rows: 3, streams: ['mix-o'] },
      });
      // With worker threads; and when they find a problem, the second pass counts again from 0.
      const dir = mkdtempSync(join(tmpdir(), 'chainlog-skip-'));
      try {
        const path = join(dir, `both.${format}`);
        writeFileSync(path, lines.join('\n') + '\n');
        expect(await verifyOfflineFile({ path, stream: 'mix-o', workers: 1 })).toMatchObject({ ok: true, checked: 3, skipped: { rows: 4, streams: ['mix-a'] } });
        writeFileSync(path, lines.join('\n').replace('seed event 2"', 'seed event 3"') + '\n');
        expect(await verifyOfflineFile({ path, stream: 'mix-o', workers: 1 })).toMatchObject({
          ok: false, problem: 'modified', firstBadSeq: 2, skipped: { rows: 4, streams: ['mix-a'] },
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('a line that is not a row at all is refused (its stream is not read from the line before)', async () => {
    const lines = await both('csv');
    // Among the rows of the other stream, or of the one asked for.
    for (const [stream, at] of [['mix-a', 2], [undefined, 2], ['mix-a', 6]] as const) {
      const junk = [...lines.slice(0, at), 'this line was added by hand', ...lines.slice(at)];
      const e = await refusal(feed(junk, 'csv', { stream }));
      expect(e, String(stream)).toMatchObject({ line: at + 1 });
      expect(e.message).toMatch(/expected 21 values on the line, found 1/);
    }
  });

  it('a row of another stream with a value an export never writes is refused', async () => {
    for (const format of FORMATS) {
      const lines = await both(format);
      const at = lines.findIndex((l) => l.includes(format === 'csv' ? ',mix-o,2,' : '"stream":"mix-o","seq":2,'));
      expect(at).toBeGreaterThan(0);
      const badTime = lines.map((l, i) => (i === at ? l.replace(/(\d{4})-(\d\d)-(\d\d)([ T]\d\d)/, '$1-02-30$4') : l));
      expect(await refusal(feed(badTime, format, { stream: 'mix-a' })), format).toMatchObject({ field: 'recorded_at', seq: 2 });
      const seqZero = lines.map((l, i) => (i === at ? l.replace(format === 'csv' ? ',mix-o,2,' : '"seq":2', format === 'csv' ? ',mix-o,0,' : '"seq":0') : l));
      expect(await refusal(feed(seqZero, format, { stream: 'mix-a' })), format).toMatchObject({ field: 'seq' });
      // Invalid UTF-8 in its actor.
      const bytes = Buffer.from(lines.join('\n') + '\n');
      const actor = bytes.indexOf('seed@example.com', bytes.indexOf(lines[at]!));
      const badUtf8 = Buffer.concat([bytes.subarray(0, actor), Buffer.from([0xc3, 0x28]), bytes.subarray(actor + 2)]);
      const e = await refusal(feed(badUtf8, format, { stream: 'mix-a' }));
      expect(e, format).toMatchObject({ field: 'actor' });
      expect(e.message).toMatch(/UTF-8/);
    }
  });

  it('a second CSV header (two exports joined) is refused as that', async () => {
    const other = (await exported('mix-o', 'csv')).lines;
    const acme = (await exported('mix-a', 'csv')).lines;
    for (const stream of ['mix-a', undefined]) {
      const e = await refusal(feed([...other, ...acme], 'csv', { stream }));
      expect(e.message, String(stream)).toMatch(/header line again/);
      expect(e).toMatchObject({ line: 5 });
    }
  });

  it('a row of a stream whose name differs from the one asked for only in its Unicode form is refused', async () => {
    for (const format of FORMATS) {
      const { lines, expectedHead } = await exported(CAFE, format);
      // The reviewer's file: a copy of event 2 as event 3 of "café" written decomposed, by mallory.
      const last = lines.at(-1)!;
      const forged = last
        .replace(format === 'csv' ? `,${CAFE},2,` : `"stream":"${CAFE}","seq":2`, format === 'csv' ? `,${CAFE_NFD},3,` : `"stream":"${CAFE_NFD}","seq":3`)
        .replace('seed@example.com', 'mallory@example.com');
      expect(forged).not.toBe(last);
      const e = await refusal(feed([...lines, forged], format, { stream: CAFE, expectedHead }));
      expect(e, format).toMatchObject({ field: 'stream' });
      expect(e.message).toContain('"cafe\\u0301"');
      expect(e.message).toContain('"caf\\u00e9"');
    }
  });

  it('without `stream`, the error for several streams shows their names escaped, so that look-alikes differ', async () => {
    const { lines } = await exported(CAFE, 'ndjson');
    const nfd = lines.map((l) => l.replace(`"stream":"${CAFE}"`, `"stream":"${CAFE_NFD}"`));
    const e = await refusal(feed([...lines, ...nfd], 'ndjson'));
    expect(e.message).toContain('("caf\\u00e9" and "cafe\\u0301")');
  });
});

describe('every row of the stream is read in full, also those not verified', () => {
  // A 30 February in the last event (seq 19), after what is verified.
  const feb30 = (format: Format) => editLine(files[format].lines, marker('r-json', format), (l) =>
    l.replace(format === 'csv' ? /,(\d{4})-(\d\d)-(\d\d) / : /"recorded_at":"(\d{4})-(\d\d)-(\d\d)T/, (m, y: string) => m.replace(/\d{4}-\d\d-\d\d/, `${y}-02-30`)));

  it('beyond upToSeq', async () => {
    for (const format of FORMATS) {
      expect(await refusal(feed(feb30(format), format, { upToSeq: 3 })), format).toMatchObject({ field: 'recorded_at' });
    }
  });

  it('after the first problem, or after lines out of order', async () => {
    for (const format of FORMATS) {
      const lines = feb30(format);
      const modified = editLine(lines, marker('r-noon', format), replaced('r-noon', 'r-n00n'));
      expect(await refusal(feed(modified, format)), format).toMatchObject({ field: 'recorded_at' });
      const at = lines.findIndex((l) => l.includes(marker('r-noon', format)));
      const swapped = lines.map((l, i) => (i === at ? lines[at + 1]! : i === at + 1 ? lines[at]! : l));
      expect(await refusal(feed(swapped, format)), format).toMatchObject({ field: 'recorded_at' });
      // Without the bad row, these are verdicts.
      expect(await feed(editLine(files[format].lines, marker('r-noon', format), replaced('r-noon', 'r-n00n')), format)).toMatchObject({ ok: false, problem: 'modified' });
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('F4: expectedHead beyond upToSeq cannot be checked, so it is refused', () => {
  it('as a checkpoint beyond upToSeq is', async () => {
    for (const format of FORMATS) {
      const { lines, expectedHead } = files[format];
      // The reviewer's case: a head that does not even match, silently not checked.
      const wrong = { seq: expectedHead.seq, hash: '0'.repeat(64) };
      const e = await invalidArgument(feed(lines, format, { upToSeq: 4, expectedHead: wrong }));
      expect(e.message).toMatch(/expected head \(seq 19\) lies beyond upToSeq \(4\)/);
      // At or below upToSeq it is checked.
      expect(await feed(lines, format, { upToSeq: 19, expectedHead })).toMatchObject({ ok: true, checked: 19 });
      expect(await feed(lines, format, { upToSeq: 19, expectedHead: wrong })).toMatchObject({ ok: false, problem: 'modified', firstBadSeq: 19 });
    }
  });

  it('an expectedHead that is not a seq and a 32-byte hash is refused', async () => {
    const { lines, expectedHead } = files.csv;
    for (const head of [{ seq: 19, hash: 'abc' }, { seq: -1, hash: expectedHead.hash }, { seq: 1.5, hash: expectedHead.hash }]) {
      await invalidArgument(feed(lines, 'csv', { expectedHead: head }));
    }
  });
});

describe('F5: seq starts at 1, and a file verified from fromSeq must start there', () => {
  it('a row at seq 0 or below is refused as malformed, not judged', async () => {
    for (const format of FORMATS) {
      const { lines, expectedHead } = files[format];
      const first = format === 'csv' ? 1 : 0;
      for (const seq of ['0', '-3']) {
        const extra = lines[first]!.replace(format === 'csv' ? `,${VALUES},1,` : '"seq":1,', format === 'csv' ? `,${VALUES},${seq},` : `"seq":${seq},`);
        const edited = [...lines.slice(0, first), extra, ...lines.slice(first)];
        const e = await refusal(feed(edited, format, { expectedHead }));
        expect(e, `${format} ${seq}`).toMatchObject({ field: 'seq', line: first + 1 });
        expect(e.message).toMatch(/out of range \(1\.\./);
      }
    }
  });

  it('a fromSeq other than the file\'s first seq is refused, saying where the file starts', async () => {
    await seedStream(db.pool, 'from-seq', 8);
    for (const format of FORMATS) {
      const partial = await exported('from-seq', format, { fromSeq: 3 });
      expect(await feed(partial.lines, format, { fromSeq: 3, expectedHead: partial.expectedHead })).toMatchObject({ ok: true, checked: 6 });
      const later = await invalidArgument(feed(partial.lines, format, { fromSeq: 4 }));
      expect(later.message, format).toMatch(/^The file starts at seq 3, not 4\b/);
      const whole = await exported('from-seq', format);
      const earlier = await invalidArgument(feed(whole.lines, format, { fromSeq: 3 }));
      expect(earlier.message, format).toMatch(/^The file starts at seq 1, not 3\b/);
      // Its first line removed: it no longer starts where its export said.
      const cut = format === 'csv' ? [partial.lines[0]!, ...partial.lines.slice(2)] : partial.lines.slice(1);
      expect((await invalidArgument(feed(cut, format, { fromSeq: 3 }))).message).toMatch(/^The file starts at seq 4, not 3\b/);
      // Without fromSeq, a file that lacks its first events still has them deleted (seq 1 is known: genesis).
      expect(await feed(partial.lines, format)).toMatchObject({ ok: false, problem: 'deleted', firstBadSeq: 1, checked: 0 });
    }
  });

  it('an upToSeq before fromSeq leaves nothing to verify, and is refused', async () => {
    const partial = await exported('from-seq', 'ndjson', { fromSeq: 3 });
    await invalidArgument(feed(partial.lines, 'ndjson', { fromSeq: 3, upToSeq: 2 }));
  });
});

describe('the auditor\'s own mistakes get clear errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chainlog-paths-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a file that does not exist, or a directory, is a ChainlogInvalidArgumentError naming the path', async () => {
    const missing = join(dir, 'no-such-export.csv');
    const e = await invalidArgument(verifyOfflineFile({ path: missing }));
    expect(e).toBeInstanceOf(ChainlogError);
    expect(e.message).toContain(missing);
    expect(e.message).toMatch(/no file/);
    const folder = await invalidArgument(verifyOfflineFile({ path: dir, format: 'ndjson' }));
    expect(folder.message).toContain(dir);
    expect(folder.message).toMatch(/directory/);
  });

  it('a file of the other format says to give the format', async () => {
    for (const format of FORMATS) {
      const other = format === 'csv' ? 'ndjson' : 'csv';
      const e = await refusal(feed(files[format].lines, other));
      expect(e, format).toMatchObject({ line: 1 });
      expect(e.message, format).toContain(`--format ${format}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The strict forms against PostgreSQL itself: a text is read exactly when PostgreSQL prints it so.

/** A small seeded generator (mulberry32), so that a failure can be reproduced. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function attempt(write: (out: Uint8Array, src: Uint8Array) => number, text: string): string | null {
  const src = Buffer.from(text, 'latin1');
  const out = new Uint8Array(32);
  try {
    return toHex(out.subarray(0, write(out, src)));
  } catch {
    return null;
  }
}

describe('format.ts reads in the export\'s forms exactly the text PostgreSQL prints, with the same value', () => {
  const SEED = 20261124;

  it('timestamptz (CSV and NDJSON forms)', async () => {
    const rnd = random(SEED);
    const int = (n: number) => Math.floor(rnd() * n);
    const pad = (n: number, w: number) => String(n).padStart(w, '0');
    const candidates = new Set<string>([
      '4714-11-24 00:00:00+00 BC', '4714-11-23 23:59:59.999999+00 BC', '294276-12-31 23:59:59.999999+00', '294277-01-01 00:00:00+00',
      '0001-01-01 00:00:00+00 BC', '0000-01-01 00:00:00+00', '0001-02-29 00:00:00+00 BC', '0005-02-29 00:00:00+00 BC', '2000-02-29 00:00:00+00',
      '1900-02-29 00:00:00+00', '2024-02-29 23:59:59.999999+00', '2000-01-01 00:00:00.000001+00', '99999-12-31 00:00:00+00',
    ]);
    while (candidates.size < 3000) {
      const r = rnd();
      const year = r < 0.6 ? 1 + int(2100) : r < 0.8 ? 1 + int(9999) : r < 0.95 ? 10000 + int(290000) : 294270 + int(10);
      const yearText = rnd() < 0.03 ? `0${pad(year, 4)}` : pad(year, 4);
      const month = rnd() < 0.05 ? [0, 13][int(2)]! : 1 + int(12);
      const day = rnd() < 0.3 ? 28 + int(5) : rnd() < 0.02 ? 0 : 1 + int(31);
      const hour = rnd() < 0.03 ? 24 : int(24);
      const minute = rnd() < 0.03 ? 60 : int(60);
      const second = rnd() < 0.03 ? 60 : int(60);
      const f = rnd();
      const fraction = f < 0.4 ? '' : f < 0.45 ? '.' : f < 0.5 ? `.${pad(int(10_000_000), 7)}` : `.${pad(int(1_000_000), 6)}`.slice(0, 2 + int(6));
      const bc = rnd() < 0.15 ? ' BC' : '';
      candidates.add(`${yearText}-${pad(month, 2)}-${pad(day, 2)} ${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${fraction}+00${bc}`);
    }
    const texts = [...candidates];
    const client = await db.connect();
    await client.query(`set timezone = 'UTC'; set datestyle = 'ISO, MDY'`);
    await client.query(`
      create function pg_temp.printed(t text) returns table (as_csv text, as_json text, bin text) language plpgsql as $$
      declare v timestamptz;
      begin
        begin v := t::timestamptz; exception when others then return; end;
        return query select v::text, pg_catalog.to_json(v) #>> '{}', pg_catalog.encode(pg_catalog.timestamptz_send(v), 'hex');
      end $$`);
    const { rows } = await client.query<{ t: string; as_csv: string | null; as_json: string | null; bin: string | null }>(
      'select t, p.as_csv, p.as_json, p.bin from unnest($1::text[]) t left join lateral pg_temp.printed(t) p on true',
      [texts],
    );
    let accepted = 0;
    for (const { t, as_csv: csv, as_json: jsonText, bin } of rows) {
      const read = (text: string, form: typeof CSV_FORM) => attempt((out, src) => writeTimestamptz(out, 0, src, 0, src.length, form), text);
      const asCsv = read(t, CSV_FORM);
      expect(asCsv, `CSV ${t} (PostgreSQL prints ${csv})`).toBe(csv === t ? bin : null);
      expect(read(json(t), JSON_FORM), `JSON ${json(t)} (PostgreSQL prints ${jsonText})`).toBe(jsonText === json(t) ? bin : null);
      // What PostgreSQL prints is always read, to the same bytes.
      if (csv !== null) expect(read(csv, CSV_FORM), csv).toBe(bin);
      if (jsonText !== null) expect(read(jsonText, JSON_FORM), jsonText).toBe(bin);
      if (asCsv !== null) accepted++;
    }
    // Both sides of the line were tried.
    expect(accepted).toBeGreaterThan(texts.length / 4);
    expect(accepted).toBeLessThan(texts.length);
  });

  it('inet', async () => {
    const rnd = random(SEED + 1);
    const int = (n: number) => Math.floor(rnd() * n);
    const candidates = new Set<string>(['0.0.0.0/0', '::/0', '::', '::1', '::2', '::0.0.0.2', '::1.2.3.4', '::ffff:0.0.0.0', '::0.0.1.0', '1::', '0:1::', '1:0:0:2::3', '1::2:0:0:3:4']);
    while (candidates.size < 3000) {
      let text: string;
      let bits: number;
      if (rnd() < 0.35) {
        const parts = Array.from({ length: 4 }, () => (rnd() < 0.2 ? 0 : int(256)));
        text = parts.map((p) => (rnd() < 0.05 ? `0${p}` : String(p))).join('.');
        bits = 32;
      } else {
        const words = Array.from({ length: 8 }, () => (rnd() < 0.5 ? 0 : rnd() < 0.5 ? int(16) : int(65536)));
        if (rnd() < 0.2) words.splice(0, 6, 0, 0, 0, 0, 0, rnd() < 0.5 ? 0xffff : 0);
        // Which zero run (if any) to write as "::": any run, of any length.
        const runs: [number, number][] = [];
        for (let g = 0; g < 8; g++) {
          if (words[g] !== 0) continue;
          for (let e = g + 1; e <= 8 && words[e - 1] === 0; e++) runs.push([g, e]);
        }
        const run = runs.length > 0 && rnd() < 0.85 ? runs[int(runs.length)]! : null;
        const dotted = rnd() < 0.25 && (run === null || run[1] <= 6);
        const hex = (w: number) => {
          const h = w.toString(16);
          return rnd() < 0.05 ? h.toUpperCase() : rnd() < 0.05 ? h.padStart(4, '0') : h;
        };
        const group = (from: number, to: number) => {
          const out: string[] = [];
          for (let g = from; g < to; g++) {
            if (dotted && g === 6) {
              out.push(`${words[6]! >> 8}.${words[6]! & 255}.${words[7]! >> 8}.${words[7]! & 255}`);
              break;
            }
            out.push(hex(words[g]!));
          }
          return out.join(':');
        };
        text = run === null ? group(0, 8) : `${group(0, run[0])}::${group(run[1], 8)}`;
        bits = 128;
      }
      const p = rnd();
      if (p < 0.4) text += `/${int(bits + 1)}`;
      else if (p < 0.45) text += `/${bits}`;
      else if (p < 0.48) text += `/0${int(10)}`;
      candidates.add(text);
    }
    const texts = [...candidates];
    const client = await db.connect();
    await client.query(`
      create function pg_temp.printed_inet(t text) returns table (printed text, bin text) language plpgsql as $$
      declare v inet;
      begin
        begin v := t::inet; exception when others then return; end;
        return query select pg_catalog.format('%s', v), pg_catalog.encode(pg_catalog.inet_send(v), 'hex');
      end $$`);
    const { rows } = await client.query<{ t: string; printed: string | null; bin: string | null }>(
      'select t, p.printed, p.bin from unnest($1::text[]) t left join lateral pg_temp.printed_inet(t) p on true',
      [texts],
    );
    let accepted = 0;
    for (const { t, printed, bin } of rows) {
      for (const form of [CSV_FORM, JSON_FORM]) {
        const ours = attempt((out, src) => writeInet(out, 0, src, 0, src.length, form), t);
        expect(ours, `${t} (PostgreSQL prints ${printed})`).toBe(printed === t ? bin : null);
        if (ours !== null) accepted++;
      }
      // What PostgreSQL prints is always read, to the same bytes.
      if (printed !== null) expect(attempt((out, src) => writeInet(out, 0, src, 0, src.length, CSV_FORM), printed), printed).toBe(bin);
    }
    expect(accepted).toBeGreaterThan(texts.length / 4);
    expect(accepted).toBeLessThan(texts.length * 2);
  });
});
