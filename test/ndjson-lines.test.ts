import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { CopyFormatError, NdjsonLines, type NdjsonField } from '../src/ndjson-lines.js';

// A binary COPY built by hand: the header (with an optional extension), rows, the trailer.
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

function header(extension = Buffer.alloc(0)): Buffer {
  const words = Buffer.alloc(8);
  words.writeInt32BE(extension.length, 4);
  return Buffer.concat([SIGNATURE, words, extension]);
}

/** One row; a field is its bytes, or null for SQL NULL. */
function row(fields: (Buffer | null)[]): Buffer {
  const parts: Buffer[] = [Buffer.from([fields.length >> 8, fields.length & 0xff])];
  for (const f of fields) {
    const length = Buffer.alloc(4);
    length.writeInt32BE(f === null ? -1 : f.length);
    parts.push(length);
    if (f) parts.push(f);
  }
  return Buffer.concat(parts);
}

const TRAILER = Buffer.from([0xff, 0xff]);
const int8 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return b;
};
const int4 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
};
const int2 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(v);
  return b;
};
const utf8 = (s: string) => Buffer.from(s, 'utf8');
const jsonb = (s: string) => Buffer.concat([Buffer.from([1]), utf8(s)]);

const FIELDS: NdjsonField[] = [
  { name: 'id', kind: 'int' },
  { name: 'small', kind: 'int' },
  { name: 'mid', kind: 'int' },
  { name: 'name', kind: 'text' },
  { name: 'at', kind: 'json' },
  { name: 'payload', kind: 'jsonb' },
  { name: 'hash', kind: 'hex' },
];

// Every byte a text can hold that JSON treats specially, and multibyte characters to be split.
const TRICKY = `"q" \\ back\\slash\t\n\r\b\f${Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join('')}\x7f é ß 中文 😀 \u2028\u2029 \u0085`;

const COPY = Buffer.concat([
  header(),
  row([int8(1n), int2(-2), int4(-2147483648), utf8('plain'), utf8('"2024-01-02T03:04:05.123456+00:00"'), jsonb('{"a": [1, 2.50, null]}'), Buffer.alloc(32, 0xab)]),
  row([int8(2n ** 53n + 1n), int2(32767), null, utf8(TRICKY), null, null, Buffer.from([0, 1, 0xfe, 0xff])]),
  row([int8(-(2n ** 63n)), null, int4(7), utf8(''), utf8('"infinity"'), jsonb('null'), Buffer.alloc(0)]),
  row([int8(-1n), int2(0), int4(2147483647), utf8('Zoë'), null, jsonb('{"s": "a\\"b\\u0001 😀"}'), Buffer.from([0x10])]),
  TRAILER,
]);

const EXPECTED = [
  '{"id":1,"small":-2,"mid":-2147483648,"name":"plain","at":"2024-01-02T03:04:05.123456+00:00","payload":{"a": [1, 2.50, null]},"hash":"' + 'ab'.repeat(32) + '"}',
  `{"id":9007199254740993,"small":32767,"name":${JSON.stringify(TRICKY)},"hash":"0001feff"}`,
  '{"id":-9223372036854775808,"mid":7,"name":"","at":"infinity","payload":null,"hash":""}',
  '{"id":-1,"small":0,"mid":2147483647,"name":"Zoë","payload":{"s": "a\\"b\\u0001 😀"},"hash":"10"}',
].map((l) => `${l}\n`).join('');

async function run(chunks: Buffer[], fields = FIELDS) {
  const progress: { rows: number; bytes: number }[] = [];
  const lines = new NdjsonLines(fields, (p) => progress.push(p));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    lines,
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        out.push(chunk);
        done();
      },
    }),
  );
  return { bytes: Buffer.concat(out), lines, progress };
}

describe('NdjsonLines', () => {
  it('writes one object per row: keys in order, NULL left out, JSON numbers, strings, raw JSON and hex', async () => {
    const { bytes, lines, progress } = await run([COPY]);
    expect(bytes.toString('utf8')).toBe(EXPECTED);
    expect(lines.rows).toBe(4);
    expect(lines.bytes).toBe(Buffer.byteLength(EXPECTED));
    expect(progress.at(-1)).toEqual({ rows: 4, bytes: Buffer.byteLength(EXPECTED) });
    for (const line of EXPECTED.trimEnd().split('\n')) JSON.parse(line);
  });

  it('escapes text exactly as PostgreSQL to_json(text) does: ", \\, and control characters only', async () => {
    const { bytes } = await run([COPY]);
    const name = /"name":("(?:[^"\\]|\\.)*")/.exec(bytes.toString('utf8').split('\n')[1]!)![1]!;
    expect(name).toBe(
      '"\\"q\\" \\\\ back\\\\slash\\t\\n\\r\\b\\f' +
        '\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f' +
        '\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f' +
        '\x7f é ß 中文 😀 \u2028\u2029 \u0085"',
    );
  });

  it('escapes every ASCII character alone as PostgreSQL escape_json() does', async () => {
    // escape_json(), as PostgreSQL writes it: byte by byte.
    const SHORT: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r', 34: '\\"', 92: '\\\\' };
    const escape = (b: number) => SHORT[b] ?? (b < 0x20 ? `\\u${b.toString(16).padStart(4, '0')}` : String.fromCharCode(b));
    const codes = Array.from({ length: 127 }, (_, i) => i + 1);
    const copy = Buffer.concat([header(), ...codes.map((b) => row([Buffer.from([0x61, b])])), TRAILER]);
    const { bytes } = await run([copy], [{ name: 't', kind: 'text' }]);
    expect(bytes.toString('latin1')).toBe(codes.map((b) => `{"t":"a${escape(b)}"}\n`).join(''));
  });

  it('gives the same bytes however the input is cut into chunks', async () => {
    for (let cut = 1; cut < COPY.length; cut++) {
      const { bytes } = await run([COPY.subarray(0, cut), COPY.subarray(cut)]);
      expect(bytes.toString('utf8'), `cut at ${cut}`).toBe(EXPECTED);
    }
    const byByte = Array.from(COPY, (b) => Buffer.from([b]));
    const { bytes, progress } = await run(byByte);
    expect(bytes.toString('utf8')).toBe(EXPECTED);
    expect(progress.map((p) => p.rows)).toEqual([1, 2, 3, 4]);
  });

  it('takes a row much longer than a chunk', async () => {
    const long = '😀"x'.repeat(200_000);
    const copy = Buffer.concat([header(), row([int8(1n), utf8(long), jsonb(JSON.stringify({ long }))]), TRAILER]);
    const chunks = [];
    for (let i = 0; i < copy.length; i += 1000) chunks.push(copy.subarray(i, i + 1000));
    const fields: NdjsonField[] = [{ name: 'id', kind: 'int' }, { name: 'text', kind: 'text' }, { name: 'payload', kind: 'jsonb' }];
    const { bytes } = await run(chunks, fields);
    expect(bytes.toString('utf8')).toBe(`{"id":1,"text":${JSON.stringify(long)},"payload":${JSON.stringify({ long })}}\n`);
  });

  it('skips a header extension', async () => {
    const copy = Buffer.concat([header(Buffer.from('ext!')), row([int8(5n)]), TRAILER]);
    expect((await run([copy], [{ name: 'id', kind: 'int' }])).bytes.toString()).toBe('{"id":5}\n');
  });

  it('refuses input that is not a whole binary COPY of the expected fields', async () => {
    await expect(run([COPY.subarray(0, COPY.length - 2)])).rejects.toThrow(CopyFormatError);
    await expect(run([COPY.subarray(0, COPY.length - 7)])).rejects.toThrow(CopyFormatError);
    await expect(run([Buffer.concat([COPY, TRAILER])])).rejects.toThrow(CopyFormatError);
    await expect(run([Buffer.from('id,stream\n1,a\n')])).rejects.toThrow(CopyFormatError);
    await expect(run([COPY], FIELDS.slice(1))).rejects.toThrow(/a row of 7 fields, expected 6/);
  });

  it('applies backpressure: a slow output stops the input from being read ahead', async () => {
    const one = row([int8(1n), int2(1), int4(1), utf8('x'.repeat(1000)), null, null, Buffer.alloc(32)]);
    let pulled = 0;
    const source = Readable.from(
      (function* () {
        yield header();
        for (let i = 0; i < 10_000; i++) {
          pulled++;
          yield one;
        }
        yield TRAILER;
      })(),
    );
    let release!: () => void;
    const stalled = new Promise<void>((resolve) => (release = resolve));
    let written = 0;
    const done = pipeline(
      source,
      new NdjsonLines(FIELDS),
      new Writable({
        highWaterMark: 1024,
        write(_chunk: Buffer, _encoding, callback) {
          written++;
          // The first write waits until the test has looked at how far the input was read.
          if (written === 1) void stalled.then(() => callback());
          else callback();
        },
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(pulled).toBeLessThan(200);
    release();
    await done;
    expect(pulled).toBe(10_000);
  });
});
