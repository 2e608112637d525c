// Writes test/vectors/format-v1.json from the SQL implementation of format v1 (sql/00002_format.sql).
//
//   npx tsx test/vectors/generate.ts            # embedded PostgreSQL 18 in a temporary directory
//   DATABASE_URL=postgres://... npx tsx test/vectors/generate.ts
//   npx tsx test/vectors/generate.ts --check    # exit 1 if the file on disk differs (CI-style)
//
// With DATABASE_URL it creates a scratch database on that server, installs chainlog there, and drops it
// afterwards; nothing else on the server is touched. The output is deterministic (fixed inputs, no
// clock), so rerunning on any supported PostgreSQL version must reproduce the file byte for byte.
//
// Each case is written with SQL literals as a person would type them; PostgreSQL parses them and the
// vector stores the text PostgreSQL prints back (TimeZone = UTC, DateStyle = ISO), which is what a
// COPY or an export of the row contains. The expected bytes come from chainlog.data_digest() and
// chainlog.canonical_bytes(); the TypeScript implementation is checked against them in
// test/format.test.ts, never the other way round.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbedded } from '../../src/embedded.js';
import { migrate } from '../../src/migrate.js';

export const VECTORS_PATH = path.join(path.dirname(fileURLToPath(import.meta.url)), 'format-v1.json');

/** The columns a vector's input holds, in chainlog.events' order. */
export const INPUT_COLUMNS = [
  'stream', 'seq', 'recorded_at', 'occurred_at', 'actor', 'actor_type', 'event_type', 'action', 'result',
  'resource_type', 'resource_id', 'source_ip', 'request_id', 'payload', 'before', 'after', 'format_version',
  'prev_hash',
] as const;

export type VectorInput = Record<(typeof INPUT_COLUMNS)[number], string | null>;

export interface Vector {
  name: string;
  /** Column values as PostgreSQL prints them; null is SQL NULL. */
  input: VectorInput;
  expected: { data_digest: string; canonical_bytes: string; hash: string };
}

export interface VectorFile {
  description: string;
  format_version: 1;
  settings: Record<string, string>;
  vectors: Vector[];
}

/** 'genesis': 32 zero bytes; 'previous': the hash of the case before (a link in a chain). */
type Case = { name: string; prev_hash?: 'genesis' | 'previous' | string } & Partial<VectorInput>;

const BASE: VectorInput = {
  stream: 'acme',
  seq: '1',
  recorded_at: '2024-05-01 12:00:00+00',
  occurred_at: null,
  actor: 'alice@example.com',
  actor_type: 'user',
  event_type: 'INVOICE_PAID',
  action: 'UPDATE',
  result: 'success',
  resource_type: null,
  resource_id: null,
  source_ip: null,
  request_id: null,
  payload: null,
  before: null,
  after: null,
  format_version: '1',
  prev_hash: null,
};

const CASES: Case[] = [
  { name: 'every optional field NULL, first event of a stream', prev_hash: 'genesis' },
  {
    name: 'the next event links to the one before (prev_hash = its hash)',
    prev_hash: 'previous',
    seq: '2',
    recorded_at: '2024-05-01 12:00:00.000001+00',
  },
  {
    name: 'empty strings are not NULL',
    resource_type: '',
    resource_id: '',
    request_id: '',
    prev_hash: 'genesis',
  },
  {
    name: 'a fully populated event',
    seq: '42',
    recorded_at: '2024-05-01 12:34:56.789012+00',
    occurred_at: '2024-05-01 12:34:50.5+00',
    resource_type: 'invoice',
    resource_id: 'inv-2024-0042',
    source_ip: '203.0.113.7',
    request_id: '3f2504e0-4f89-11d3-9a0c-0305e82c3301',
    payload: '{"amount": 1250, "currency": "EUR"}',
    before: '{"status": "open"}',
    after: '{"status": "paid"}',
    prev_hash: '\\x' + 'ab'.repeat(32),
  },
  {
    name: 'non-ASCII text: accents, CJK and emoji, in fields and payload',
    actor: 'José Müller',
    resource_type: '文档',
    resource_id: '中文-😀',
    request_id: 'é',
    payload: '{"city": "北京", "name": "Zoë", "mood": "🎉"}',
    prev_hash: 'genesis',
  },
  {
    name: 'text with tab, newline, backslash, quotes and commas (escaped by COPY and CSV, raw in the hash)',
    actor: 'o\'brien',
    resource_id: 'a\tb\nc\\d',
    request_id: 'say "hi", then\r\nleave',
    payload: '{"path": "C:\\\\temp\\\\x", "quote": "\\"", "nl": "a\\nb"}',
    prev_hash: 'genesis',
  },
  { name: 'IPv4 address', source_ip: '192.0.2.1', prev_hash: 'genesis' },
  { name: 'IPv4 address with a prefix length (host bits kept)', source_ip: '10.1.2.3/8', prev_hash: 'genesis' },
  { name: 'IPv4 /32 prints without a prefix', source_ip: '198.51.100.9/32', prev_hash: 'genesis' },
  { name: 'IPv6 address, compressed', source_ip: '2001:0db8:0000:0000:0000:0000:0000:0001', prev_hash: 'genesis' },
  { name: 'IPv6 address with a prefix length', source_ip: 'fe80::1ff:fe23:4567:890a/64', prev_hash: 'genesis' },
  { name: 'IPv6 unspecified address', source_ip: '::', prev_hash: 'genesis' },
  { name: 'IPv4-mapped IPv6 address', source_ip: '::ffff:192.0.2.128', prev_hash: 'genesis' },
  { name: 'IPv6 address printed with a dotted IPv4 tail', source_ip: '::1.2.3.4', prev_hash: 'genesis' },
  { name: 'occurred_at before 2000 (negative microseconds)', occurred_at: '1969-07-20 20:17:40+00', prev_hash: 'genesis' },
  {
    name: 'occurred_at one microsecond before 2000-01-01 UTC',
    occurred_at: '1999-12-31 23:59:59.999999+00',
    prev_hash: 'genesis',
  },
  { name: 'occurred_at exactly 2000-01-01 UTC (zero)', occurred_at: '2000-01-01 00:00:00+00', prev_hash: 'genesis' },
  { name: 'occurred_at given in another time zone', occurred_at: '2024-03-10 02:30:00.25-05:30', prev_hash: 'genesis' },
  { name: 'occurred_at before the common era', occurred_at: '0044-03-15 12:00:00+00 BC', prev_hash: 'genesis' },
  { name: 'occurred_at at the largest timestamptz', occurred_at: '294276-12-31 23:59:59.999999+00', prev_hash: 'genesis' },
  { name: 'occurred_at at the smallest timestamptz', occurred_at: '4714-11-24 00:00:00+00 BC', prev_hash: 'genesis' },
  // The trigger refuses these for occurred_at; a tampered row may still hold them, and a verifier must
  // encode them as PostgreSQL does.
  { name: 'occurred_at infinity (only in a tampered row)', occurred_at: 'infinity', prev_hash: 'genesis' },
  { name: 'occurred_at -infinity (only in a tampered row)', occurred_at: '-infinity', prev_hash: 'genesis' },
  { name: 'seq beyond 2^53', seq: '9007199254740993', prev_hash: '\\x' + '0f'.repeat(32) },
  {
    name: 'jsonb: nested objects and arrays, keys reordered by jsonb, duplicate key keeps the last',
    payload: '{"z": {"y": [1, {"b": 2, "a": 1}], "x": null}, "a": true, "aa": false, "a": "last"}',
    prev_hash: 'genesis',
  },
  {
    name: 'jsonb: unicode escapes are decoded, control characters stay escaped',
    payload: '{"e": "caf\\u00e9", "smile": "\\ud83d\\ude00", "ctl": "\\u0001\\t", "slash": "\\/"}',
    prev_hash: 'genesis',
  },
  {
    name: 'jsonb: numbers keep their digits (big, precise, exponent, negative zero)',
    payload: '[12345678901234567890123456789, 0.1000, 1e3, 1.5E-7, -0, 3.14159265358979323846264338327950288]',
    prev_hash: 'genesis',
  },
  { name: 'payload is JSON null (not SQL NULL)', payload: 'null', prev_hash: 'genesis' },
  { name: 'payload is SQL NULL, before and after set', before: '{"a": 1}', after: 'null', prev_hash: 'genesis' },
  { name: 'payload is an empty JSON string', payload: '""', prev_hash: 'genesis' },
  {
    name: 'failure result and other actor types',
    actor_type: 'api_key',
    actor: 'key_live_7f3a',
    result: 'failure',
    event_type: 'LOGIN',
    action: 'EXECUTE',
    prev_hash: 'genesis',
  },
];

const NORMALIZE_AND_ENCODE = `
  with v as (
    select $1::text as stream, $2::bigint as seq, $3::timestamptz as recorded_at, $4::timestamptz as occurred_at,
           $5::text as actor, $6::text as actor_type, $7::text as event_type, $8::text as action, $9::text as result,
           $10::text as resource_type, $11::text as resource_id, $12::inet as source_ip, $13::text as request_id,
           $14::jsonb as payload, $15::jsonb as before, $16::jsonb as after, $17::smallint as format_version,
           $18::bytea as prev_hash),
  d as (select v.*, chainlog.data_digest(payload, before, after) as data_digest from v),
  c as (select d.*, chainlog.canonical_bytes(format_version, prev_hash, seq, recorded_at, data_digest, stream,
           occurred_at, actor, actor_type, event_type, action, result, resource_type, resource_id, source_ip,
           request_id) as canonical from d)
  select stream, seq, recorded_at, occurred_at, actor, actor_type, event_type, action, result,
         resource_type, resource_id, source_ip, request_id, payload, before, after, format_version, prev_hash,
         encode(data_digest, 'hex') as data_digest, encode(canonical, 'hex') as canonical_bytes,
         encode(sha256(canonical), 'hex') as hash
    from c`;

// Every value as its type's output function prints it (what COPY writes), with no driver parsing. Not
// `::text`: for inet that cast always appends the prefix length, which the output function omits.
const RAW_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

/** The session settings under which PostgreSQL prints the inputs as stored in the file. */
export const PRINT_SETTINGS = { TimeZone: 'UTC', DateStyle: 'ISO, MDY', bytea_output: 'hex', IntervalStyle: 'postgres' };

export async function generateVectors(client: pg.ClientBase): Promise<VectorFile> {
  for (const [name, value] of Object.entries(PRINT_SETTINGS)) {
    await client.query('select set_config($1, $2, false)', [name, value]);
  }
  const vectors: Vector[] = [];
  for (const c of CASES) {
    const input: VectorInput = { ...BASE, ...c } as VectorInput & Case;
    const previous = vectors.at(-1);
    const prev = c.prev_hash ?? 'genesis';
    input.prev_hash =
      prev === 'genesis' ? '\\x' + '00'.repeat(32) : prev === 'previous' ? '\\x' + previous!.expected.hash : prev;
    const { rows } = await client.query({
      text: NORMALIZE_AND_ENCODE,
      values: INPUT_COLUMNS.map((k) => input[k]),
      types: RAW_TEXT,
    });
    const r = rows[0];
    vectors.push({
      name: c.name,
      input: Object.fromEntries(INPUT_COLUMNS.map((k) => [k, r[k]])) as VectorInput,
      expected: { data_digest: r.data_digest, canonical_bytes: r.canonical_bytes, hash: r.hash },
    });
  }
  return {
    description:
      'chainlog format v1 test vectors (docs/FORMAT.md). input: column values as PostgreSQL prints them with the settings below ' +
      '(null = SQL NULL). expected: hex of chainlog.data_digest(payload, before, after), chainlog.canonical_bytes(...) with that ' +
      'digest, and hash = sha256(canonical_bytes). Regenerate with: npx tsx test/vectors/generate.ts',
    format_version: 1,
    settings: PRINT_SETTINGS,
    vectors,
  };
}

export function serializeVectors(file: VectorFile): string {
  return JSON.stringify(file, null, 2) + '\n';
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  let serverUrl = process.env.DATABASE_URL;
  let stop = async () => {};
  if (!serverUrl) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-vectors-'));
    const server = await startEmbedded({ dataDir: path.join(dir, 'data'), persistent: false });
    serverUrl = server.connectionString('postgres');
    stop = async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const database = `chainlog_vectors_${process.pid}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${database}`);
    const url = new URL(serverUrl);
    url.pathname = `/${database}`;
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      await migrate({ client });
      const text = serializeVectors(await generateVectors(client));
      if (check) {
        const current = readFileSync(VECTORS_PATH, 'utf8');
        if (current !== text) {
          console.error(`${VECTORS_PATH} is stale: rerun npx tsx test/vectors/generate.ts`);
          process.exitCode = 1;
        } else {
          console.log(`${VECTORS_PATH} is up to date`);
        }
      } else {
        writeFileSync(VECTORS_PATH, text);
        console.log(`wrote ${VECTORS_PATH}`);
      }
    } finally {
      await client.end();
    }
  } finally {
    await admin.query(`drop database if exists ${database} with (force)`).catch(() => {});
    await admin.end();
    await stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
