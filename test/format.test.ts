import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  canonicalBytes,
  contentMatches,
  dataDigest,
  eventHash,
  eventTextFromColumns,
  FormatError,
  genesisHash,
  parseEventText,
  parseInet,
  parseTimestamptz,
  toHex,
  type Sha256,
} from '../src/format.js';
import { useChainlogDatabase } from './support/db.js';
import { INPUT_COLUMNS, VECTORS_PATH, type VectorFile } from './vectors/generate.js';

const db = useChainlogDatabase();
const vectorFile = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as VectorFile;
const nodeSha256: Sha256 = (b) => createHash('sha256').update(b).digest();

// Every value exactly as the type's output function prints it, as COPY does.
const RAW_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

function textOf(input: Record<string, string | null>) {
  return eventTextFromColumns({ ...input, data_digest: '\\x' + '00'.repeat(32), hash: '\\x' + '00'.repeat(32) });
}

describe('format v1 test vectors', () => {
  it('cover the cases docs/FORMAT.md promises', () => {
    const names = vectorFile.vectors.map((v) => v.name).join('\n');
    for (const topic of ['NULL', 'empty strings', 'emoji', 'IPv4', 'IPv6', 'IPv4-mapped', 'before 2000', 'jsonb', 'JSON null']) {
      expect(names).toContain(topic);
    }
  });

  describe('TypeScript (src/format.ts) produces the expected bytes', () => {
    for (const v of vectorFile.vectors) {
      it(v.name, () => {
        const { payload, before, after } = v.input;
        const digest = dataDigest(payload, before, after);
        expect(toHex(digest)).toBe(v.expected.data_digest);
        const event = { ...parseEventText(textOf(v.input)), dataDigest: digest };
        expect(toHex(canonicalBytes(event))).toBe(v.expected.canonical_bytes);
        expect(toHex(eventHash(event))).toBe(v.expected.hash);
        // The injected node:crypto SHA-256 gives the same hash as the portable default.
        expect(toHex(eventHash(event, nodeSha256))).toBe(v.expected.hash);
      });
    }
  });

  describe('SQL (chainlog.canonical_bytes, chainlog.data_digest) on this server produces the expected bytes', () => {
    for (const v of vectorFile.vectors) {
      it(v.name, async () => {
        const { rows } = await db.query(
          `with v as (
             select $1::text as stream, $2::bigint as seq, $3::timestamptz as recorded_at, $4::timestamptz as occurred_at,
                    $5::text as actor, $6::text as actor_type, $7::text as event_type, $8::text as action, $9::text as result,
                    $10::text as resource_type, $11::text as resource_id, $12::inet as source_ip, $13::text as request_id,
                    $14::jsonb as payload, $15::jsonb as before, $16::jsonb as after, $17::smallint as format_version,
                    $18::bytea as prev_hash),
           d as (select v.*, chainlog.data_digest(payload, before, after) as data_digest from v)
           select encode(data_digest, 'hex') as data_digest,
                  encode(chainlog.canonical_bytes(format_version, prev_hash, seq, recorded_at, data_digest, stream,
                    occurred_at, actor, actor_type, event_type, action, result, resource_type, resource_id, source_ip,
                    request_id), 'hex') as canonical_bytes
             from d`,
          INPUT_COLUMNS.map((k) => v.input[k]),
        );
        expect(rows[0]).toEqual({ data_digest: v.expected.data_digest, canonical_bytes: v.expected.canonical_bytes });
      });
    }
  });

  it('a chained vector names the previous vector hash as its prev_hash', () => {
    const i = vectorFile.vectors.findIndex((v) => v.name.includes('links to the one before'));
    expect(vectorFile.vectors[i]!.input.prev_hash).toBe('\\x' + vectorFile.vectors[i - 1]!.expected.hash);
  });
});

describe('parsing PostgreSQL text', () => {
  it('reads timestamps as microseconds since 2000-01-01 UTC, in ISO and JSON form and any offset', () => {
    expect(parseTimestamptz('2000-01-01 00:00:00+00')).toBe(0n);
    expect(parseTimestamptz('1999-12-31 23:59:59.999999+00')).toBe(-1n);
    expect(parseTimestamptz('2000-01-01T00:00:00.5+00:00')).toBe(500_000n);
    expect(parseTimestamptz('2000-01-01 05:30:00+05:30')).toBe(0n);
    expect(parseTimestamptz('2000-01-01T00:00:00Z')).toBe(0n);
    expect(parseTimestamptz('0001-01-01 00:00:00+00 BC')).toBe(parseTimestamptz('0001-01-01 00:00:00+00') - 366n * 86_400_000_000n);
    expect(parseTimestamptz('infinity')).toBe(2n ** 63n - 1n);
    expect(parseTimestamptz('-infinity')).toBe(-(2n ** 63n));
  });

  it('reads inet text as PostgreSQL binary inet', () => {
    expect(toHex(parseInet('192.0.2.1'))).toBe('02200004c0000201');
    expect(toHex(parseInet('10.1.2.3/8'))).toBe('020800040a010203');
    expect(toHex(parseInet('2001:db8::1'))).toBe('0380001020010db8000000000000000000000001');
    expect(toHex(parseInet('::ffff:192.0.2.128/120'))).toBe('03780010' + '00000000000000000000ffffc0000280');
    expect(toHex(parseInet('::'))).toBe('03800010' + '00'.repeat(16));
    expect(toHex(parseInet('1::'))).toBe('03800010' + '0001' + '00'.repeat(14));
  });

  it('refuses text PostgreSQL would never print instead of hashing something else', () => {
    for (const bad of [
      '2024-13-01 00:00:00+00', '2024-01-01', '2024-01-01 00:00:00', '2024-01-01 00:00:00.1234567+00',
      // Dates and times that do not exist, though they once counted on as the next day or minute.
      '2024-02-30 00:00:00+00', '2023-02-29 00:00:00+00', '0002-02-29 00:00:00+00 BC', '2024-04-31 00:00:00+00',
      '2024-01-01 24:00:00+00', '2024-01-01 23:60:00+00', '2024-01-01 23:59:60+00',
      // A dot without digits, a year PostgreSQL never prints, an offset beyond 15:59:59.
      '2024-01-01 00:00:00.+00', '02024-01-01 00:00:00+00', '0000-01-01 00:00:00+00', '1234567-01-01 00:00:00+00',
      '2024-01-01 00:00:00+16', '2024-01-01T00:00:00+72:00', '2024-01-01 00:00:00+05:60',
      // Outside timestamptz's range: the first would wrap around 64 bits to 2026.
      '586580-12-11T13:22:10.887906+00:00', '294277-01-01 00:00:00+00', '4714-11-23 23:59:59+00 BC',
    ]) {
      expect(() => parseTimestamptz(bad), bad).toThrow(FormatError);
    }
    // Its first and last instants, and the largest offset PostgreSQL takes.
    expect(parseTimestamptz('4714-11-24 00:00:00+00 BC')).toBe(-211_813_488_000_000_000n);
    expect(parseTimestamptz('294276-12-31 23:59:59.999999+00')).toBe(9_223_371_331_199_999_999n);
    expect(parseTimestamptz('2000-01-01 15:59:59+15:59:59')).toBe(0n);
    for (const bad of ['1.2.3', '1.2.3.256', '1::2::3', '1:2:3:4:5:6:7', '10.0.0.1/33', 'fe80::1%eth0', '', '010.1.2.3', '10.1.2.3/08', '1.2.3.0001', '2001:db8:']) {
      expect(() => parseInet(bad), bad).toThrow(FormatError);
    }
  });

  it('genesis hash is 32 zero bytes', () => {
    expect(toHex(genesisHash())).toBe('00'.repeat(32));
  });
});

// A small seeded generator, so a failure can be reproduced from the printed seed.
function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}

const ALPHABET = ['a', 'Z', '0', ' ', 'é', 'ß', '中', '文', '😀', '🎉', '\t', '\n', '\\', '"', "'", ',', '\r', '\u0001', '{', '}'];

describe('events chained by the trigger hash the same in TypeScript', () => {
  it('several hundred random events: every data_digest, hash and link recomputed in TypeScript matches', async () => {
    const seed = Date.now() % 1_000_000;
    const r = prng(seed);
    const str = (max: number) => Array.from({ length: r.int(max) + 1 }, () => r.pick(ALPHABET)).join('');
    const maybe = <T>(f: () => T): T | null => (r.next() < 0.3 ? null : f());
    const ip = () => {
      switch (r.int(4)) {
        case 0:
          return Array.from({ length: 4 }, () => r.int(256)).join('.') + (r.next() < 0.5 ? `/${r.int(33)}` : '');
        case 1:
          return Array.from({ length: 8 }, () => (r.next() < 0.4 ? 0 : r.int(65536)).toString(16)).join(':') + (r.next() < 0.5 ? `/${r.int(129)}` : '');
        case 2:
          return `::ffff:${Array.from({ length: 4 }, () => r.int(256)).join('.')}`;
        default:
          return `${r.int(65536).toString(16)}::${r.int(65536).toString(16)}`;
      }
    };
    const json = (depth: number): string => {
      switch (r.int(depth > 2 ? 4 : 6)) {
        case 0:
          return JSON.stringify(str(6));
        case 1:
          return r.pick(['0', '-1.50', '12345678901234567890.000001', '1e-5', 'true', 'null']);
        case 2:
          return `"\\u00e9\\ud83d\\ude00\\n${r.int(100)}"`;
        case 3:
          return String(r.int(1e9));
        case 4:
          return `[${Array.from({ length: r.int(4) }, () => json(depth + 1)).join(', ')}]`;
        default:
          return `{${Array.from({ length: r.int(4) }, () => `${JSON.stringify(str(4))}: ${json(depth + 1)}`).join(', ')}}`;
      }
    };
    const streams = ['rand-a', 'rand-b', 'rand-ü'];
    const count = 300;
    const client = await db.connect();
    for (let i = 0; i < count; i++) {
      // occurred_at anywhere from 1900 to 2100, in whole seconds or with microseconds, any offset.
      const occurred = maybe(() => {
        const ms = Date.UTC(1900, 0, 1) + r.next() * (Date.UTC(2100, 0, 1) - Date.UTC(1900, 0, 1));
        const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19);
        const micros = r.next() < 0.5 ? '' : `.${String(r.int(1_000_000)).padStart(6, '0')}`;
        return `${iso}${micros}${r.pick(['+00', '-05:30', '+14', 'Z'])}`;
      });
      await client.query(
        `insert into chainlog.events (stream, actor, actor_type, event_type, action, result, resource_type, resource_id,
                                      source_ip, request_id, occurred_at, payload, before, after)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        [
          r.pick(streams),
          str(12),
          r.pick(['user', 'api_key', 'service', 'system']),
          'EV_' + str(5),
          r.pick(['CREATE', 'UPDATE', 'DELETE']),
          r.pick(['success', 'failure']),
          maybe(() => str(8)),
          maybe(() => (r.next() < 0.2 ? '' : str(20))),
          maybe(ip),
          maybe(() => str(30)),
          occurred,
          maybe(() => json(0)),
          maybe(() => json(1)),
          maybe(() => json(1)),
        ],
      );
    }
    const { rows } = await client.query({
      text: `select * from chainlog.events where stream = any($1) order by stream, seq`,
      values: [streams],
      types: RAW_TEXT,
    });
    expect(rows).toHaveLength(count);
    let previous: { stream: string; hash: string } | undefined;
    for (const row of rows) {
      const t = eventTextFromColumns(row);
      const context = `seed ${seed}, ${t.stream} seq ${t.seq}`;
      expect(toHex(dataDigest(t.payload, t.before, t.after, nodeSha256)), context).toBe(t.dataDigest.slice(2));
      expect(toHex(eventHash(parseEventText(t), nodeSha256)), context).toBe(t.hash.slice(2));
      expect(contentMatches(t), context).toBe(true);
      const expectedPrev = previous?.stream === t.stream ? previous.hash : '\\x' + '00'.repeat(32);
      expect(t.prevHash, context).toBe(expectedPrev);
      previous = { stream: t.stream, hash: t.hash };
    }
  });
});
