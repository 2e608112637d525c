// The canonical encoding of an event, format version 1, in TypeScript: the same bytes as
// sql/00002_format.sql (docs/FORMAT.md, checked by test/vectors/format-v1.json).
//
// Browser-portable on purpose (no node: imports): an auditor can check hashes anywhere. SHA-256 is
// injectable; the default is @noble/hashes. Node callers that hash many events should pass node:crypto
// (src/offline-verify.ts does), which is about twice as fast on event-sized inputs.
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

export const FORMAT_VERSION = 1;

/** Bytes before the variable fields: version (2), prev_hash (32), seq (8), recorded_at (8), data_digest (32). */
export const HEAD_LENGTH = 82;

/** A SHA-256 implementation: 32 bytes out. */
export type Sha256 = (data: Uint8Array) => Uint8Array;

/** The portable default, @noble/hashes. */
export const defaultSha256: Sha256 = (data) => nobleSha256(data);

/** The prev_hash of every stream's first event: 32 zero bytes. */
export function genesisHash(): Uint8Array {
  return new Uint8Array(32);
}

/** The fields the hash commits to, typed. Text is compared as UTF-8 bytes. */
export interface ChainEvent {
  formatVersion: number;
  prevHash: Uint8Array;
  seq: bigint;
  /** Microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's own timestamp representation). */
  recordedAt: bigint;
  dataDigest: Uint8Array;
  stream: string;
  /** Microseconds since 2000-01-01 00:00:00 UTC, or null. */
  occurredAt: bigint | null;
  actor: string;
  actorType: string;
  eventType: string;
  action: string;
  result: string;
  resourceType: string | null;
  resourceId: string | null;
  /** As PostgreSQL prints an inet: '203.0.113.7', '10.0.0.1/8', '2001:db8::1', '::ffff:192.0.2.1'. */
  sourceIp: string | null;
  requestId: string | null;
}

/**
 * An event row as PostgreSQL prints it (COPY, CSV export, psql) with TimeZone = UTC, DateStyle = ISO and
 * bytea_output = hex: every value a string, SQL NULL as null.
 */
export interface EventText {
  id?: string | null;
  stream: string;
  seq: string;
  recordedAt: string;
  occurredAt: string | null;
  actor: string;
  actorType: string;
  eventType: string;
  action: string;
  result: string;
  resourceType: string | null;
  resourceId: string | null;
  sourceIp: string | null;
  requestId: string | null;
  payload: string | null;
  before: string | null;
  after: string | null;
  formatVersion: string;
  dataDigest: string;
  prevHash: string;
  hash: string;
}

/** chainlog.events column names, in table order, by their EventText key. */
export const EVENT_COLUMNS = {
  id: 'id',
  stream: 'stream',
  seq: 'seq',
  recordedAt: 'recorded_at',
  occurredAt: 'occurred_at',
  actor: 'actor',
  actorType: 'actor_type',
  eventType: 'event_type',
  action: 'action',
  result: 'result',
  resourceType: 'resource_type',
  resourceId: 'resource_id',
  sourceIp: 'source_ip',
  requestId: 'request_id',
  payload: 'payload',
  before: 'before',
  after: 'after',
  formatVersion: 'format_version',
  dataDigest: 'data_digest',
  prevHash: 'prev_hash',
  hash: 'hash',
} as const satisfies Record<keyof EventText, string>;

/** Maps a row keyed by column name (snake_case, every value text or null) to an EventText. */
export function eventTextFromColumns(row: Readonly<Record<string, string | null | undefined>>): EventText {
  const out: Record<string, string | null> = {};
  for (const [key, column] of Object.entries(EVENT_COLUMNS)) {
    const value = row[column];
    if (value === undefined) {
      if (key === 'id') continue;
      throw new FormatError(`column ${column} is missing`);
    }
    out[key] = value;
  }
  return out as unknown as EventText;
}

// ---------------------------------------------------------------------------------------------
// Byte-level writers. They read ASCII text from src[start, end) and write the binary form into out at
// pos, returning the position after it. The offline verifier calls them on raw COPY bytes, so they
// allocate nothing. `out` must have room: 8 bytes for a timestamp, 20 for an inet, (end-start)/2 for hex.

const C_0 = 48;
const C_9 = 57;

function digit(src: Uint8Array, i: number, end: number, what: string): number {
  const c = i < end ? src[i]! : -1;
  if (c < C_0 || c > C_9) throw new FormatError(`${what}: expected a digit at offset ${i}`, src, end);
  return c - C_0;
}

/** Thrown for text that is not a value PostgreSQL prints for the column. */
export class FormatError extends Error {
  override name = 'FormatError';
  constructor(message: string, src?: Uint8Array, end?: number) {
    super(src ? `${message} (in "${latin1(src, Math.max(0, (end ?? src.length) - 64), end ?? src.length)}")` : message);
  }
}

/** The bytes as text, one character per byte (for digits and messages: no decoding needed). */
export function latin1(src: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(src[i]!);
  return s;
}

/** Writes a (possibly negative) integer count of microseconds, given as seconds and 0..999999, as int64 BE. */
function writeMicros(out: Uint8Array, pos: number, seconds: number, micros: number): number {
  // seconds * 1e6 overflows a double's 53 bits for dates far from 2000, so split the product in
  // 16-bit pieces that stay exact: total = aHi * 2^32 + c.
  const sHi = Math.floor(seconds / 65536);
  const sLo = seconds - sHi * 65536;
  const a = sHi * 1_000_000;
  const aHi = Math.floor(a / 65536);
  const c = (a - aHi * 65536) * 65536 + sLo * 1_000_000 + micros;
  const hi = aHi + Math.floor(c / 4294967296);
  const lo = c % 4294967296;
  return writeU32(out, writeU32(out, pos, hi >>> 0), lo >>> 0);
}

/** Writes v as 4 big-endian bytes at pos; returns the position after them. */
export function writeU32(out: Uint8Array, pos: number, v: number): number {
  out[pos] = v >>> 24;
  out[pos + 1] = (v >>> 16) & 255;
  out[pos + 2] = (v >>> 8) & 255;
  out[pos + 3] = v & 255;
  return pos + 4;
}

// Days from 1970-01-01 to a proleptic Gregorian date (astronomical year: 1 BC is year 0).
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

const DAYS_1970_TO_2000 = 10957;

function matches(src: Uint8Array, start: number, end: number, word: string): boolean {
  if (end - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (src[start + i] !== word.charCodeAt(i)) return false;
  return true;
}

/**
 * Writes a timestamptz printed by PostgreSQL as 8 bytes: microseconds since 2000-01-01 00:00:00 UTC,
 * int64 big-endian (what timestamptz_send() gives). Accepts the ISO DateStyle form
 * ('2024-03-01 12:00:00.123456+00', '0044-03-15 12:00:00+00 BC') and the JSON/XSD form
 * ('2024-03-01T12:00:00.123456+00:00'), any UTC offset, and infinity / -infinity.
 */
export function writeTimestamptz(out: Uint8Array, pos: number, src: Uint8Array, start: number, end: number): number {
  // PostgreSQL stores infinity as INT64_MAX and -infinity as INT64_MIN.
  if (matches(src, start, end, 'infinity')) return writeU32(out, writeU32(out, pos, 0x7fffffff), 0xffffffff);
  if (matches(src, start, end, '-infinity')) return writeU32(out, writeU32(out, pos, 0x80000000), 0);
  const what = 'timestamptz';
  let i = start;
  let year = 0;
  let n = 0;
  while (i < end && src[i] !== 45 /* - */) {
    year = year * 10 + digit(src, i, end, what);
    i++;
    n++;
  }
  if (n < 4 || src[i] !== 45) throw new FormatError(`${what}: expected YYYY-MM-DD`, src, end);
  const month = digit(src, i + 1, end, what) * 10 + digit(src, i + 2, end, what);
  if (src[i + 3] !== 45) throw new FormatError(`${what}: expected YYYY-MM-DD`, src, end);
  const day = digit(src, i + 4, end, what) * 10 + digit(src, i + 5, end, what);
  i += 6;
  if (src[i] !== 32 && src[i] !== 84 /* T */) throw new FormatError(`${what}: expected a time after the date`, src, end);
  const hour = digit(src, i + 1, end, what) * 10 + digit(src, i + 2, end, what);
  const minute = digit(src, i + 4, end, what) * 10 + digit(src, i + 5, end, what);
  const second = digit(src, i + 7, end, what) * 10 + digit(src, i + 8, end, what);
  if (src[i + 3] !== 58 || src[i + 6] !== 58) throw new FormatError(`${what}: expected HH:MM:SS`, src, end);
  i += 9;
  let micros = 0;
  if (src[i] === 46 /* . */) {
    i++;
    let scale = 100000;
    while (i < end && src[i]! >= C_0 && src[i]! <= C_9) {
      if (scale < 1) throw new FormatError(`${what}: more than 6 fractional digits`, src, end);
      micros += (src[i]! - C_0) * scale;
      scale /= 10;
      i++;
    }
  }
  let offset = 0;
  const sign = src[i];
  if (sign === 90 /* Z */) {
    i++;
  } else if (sign === 43 /* + */ || sign === 45 /* - */) {
    offset = (digit(src, i + 1, end, what) * 10 + digit(src, i + 2, end, what)) * 3600;
    i += 3;
    if (src[i] === 58) {
      offset += (digit(src, i + 1, end, what) * 10 + digit(src, i + 2, end, what)) * 60;
      i += 3;
      if (src[i] === 58) {
        offset += digit(src, i + 1, end, what) * 10 + digit(src, i + 2, end, what);
        i += 3;
      }
    }
    if (sign === 45) offset = -offset;
  } else {
    throw new FormatError(`${what}: expected a UTC offset such as +00`, src, end);
  }
  if (i < end) {
    if (matches(src, i, end, ' BC')) year = 1 - year;
    else throw new FormatError(`${what}: unexpected text after the offset`, src, end);
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 24 || minute > 59 || second > 60) {
    throw new FormatError(`${what}: field out of range`, src, end);
  }
  const days = daysFromCivil(year, month, day) - DAYS_1970_TO_2000;
  return writeMicros(out, pos, days * 86400 + hour * 3600 + minute * 60 + second - offset, micros);
}

/** Writes hex digits (with or without PostgreSQL's '\x' prefix) as bytes. */
export function writeHex(out: Uint8Array, pos: number, src: Uint8Array, start: number, end: number): number {
  if (end - start >= 2 && src[start] === 92 && src[start + 1] === 120) start += 2;
  if ((end - start) % 2 !== 0) throw new FormatError('hex: odd number of digits', src, end);
  for (let i = start; i < end; i += 2) out[pos++] = (hexValue(src, i, end) << 4) | hexValue(src, i + 1, end);
  return pos;
}

function hexValue(src: Uint8Array, i: number, end: number): number {
  const c = src[i]!;
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  throw new FormatError(`hex: not a hex digit at offset ${i}`, src, end);
}

/**
 * Writes an inet printed by PostgreSQL in its binary form (inet_send()): family (2 = IPv4, 3 = IPv6),
 * prefix bits, is_cidr (0 for inet), address length (4 or 16), address bytes.
 */
export function writeInet(out: Uint8Array, pos: number, src: Uint8Array, start: number, end: number): number {
  let slash = end;
  let colon = false;
  for (let i = start; i < end; i++) {
    if (src[i] === 47) slash = i;
    else if (src[i] === 58) colon = true;
  }
  const size = colon ? 16 : 4;
  const addr = pos + 4;
  if (colon) parseIPv6(out, addr, src, start, slash);
  else parseIPv4(out, addr, src, start, slash, end);
  let bits = size * 8;
  if (slash < end) {
    bits = 0;
    if (slash + 1 >= end || end - slash > 4) throw new FormatError('inet: bad prefix length', src, end);
    for (let i = slash + 1; i < end; i++) bits = bits * 10 + digit(src, i, end, 'inet');
    if (bits > size * 8) throw new FormatError('inet: prefix length too large', src, end);
  }
  out[pos] = colon ? 3 : 2;
  out[pos + 1] = bits;
  out[pos + 2] = 0;
  out[pos + 3] = size;
  return addr + size;
}

function parseIPv4(out: Uint8Array, pos: number, src: Uint8Array, start: number, end: number, fullEnd = end): void {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i <= end; i++) {
    if (i === end || src[i] === 46) {
      if (digits === 0 || value > 255 || part > 3) throw new FormatError('inet: bad IPv4 address', src, fullEnd);
      out[pos + part++] = value;
      value = 0;
      digits = 0;
    } else {
      value = value * 10 + digit(src, i, fullEnd, 'inet');
      digits++;
    }
  }
  if (part !== 4) throw new FormatError('inet: an IPv4 address has 4 parts', src, fullEnd);
}

function parseIPv6(out: Uint8Array, pos: number, src: Uint8Array, start: number, end: number): void {
  // Groups before and after '::' are collected separately; the gap is zero-filled. An embedded IPv4
  // tail ('::ffff:192.0.2.1') fills the last 4 bytes.
  const head: number[] = [];
  const tail: number[] = [];
  let groups = head;
  let compressed = false;
  let i = start;
  if (src[i] === 58 && src[i + 1] === 58) {
    compressed = true;
    groups = tail;
    i += 2;
  }
  while (i < end) {
    let j = i;
    let dot = false;
    while (j < end && src[j] !== 58) {
      if (src[j] === 46) dot = true;
      j++;
    }
    if (dot) {
      if (j !== end) throw new FormatError('inet: IPv4 part must come last', src, end);
      const v4 = new Uint8Array(4);
      parseIPv4(v4, 0, src, i, j);
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      i = j;
      break;
    }
    if (j === i || j - i > 4) throw new FormatError('inet: bad IPv6 group', src, end);
    let v = 0;
    for (let k = i; k < j; k++) v = (v << 4) | hexValue(src, k, end);
    groups.push(v);
    i = j;
    if (i < end) {
      if (src[i + 1] === 58) {
        if (compressed) throw new FormatError('inet: more than one "::"', src, end);
        compressed = true;
        groups = tail;
        i += 2;
      } else {
        i += 1;
        if (i === end) throw new FormatError('inet: trailing ":"', src, end);
      }
    }
  }
  const total = head.length + tail.length;
  if (compressed ? total > 7 : total !== 8) throw new FormatError('inet: an IPv6 address has 8 groups', src, end);
  out.fill(0, pos, pos + 16);
  head.forEach((g, k) => {
    out[pos + 2 * k] = g >> 8;
    out[pos + 2 * k + 1] = g & 255;
  });
  const at = 8 - tail.length;
  tail.forEach((g, k) => {
    out[pos + 2 * (at + k)] = g >> 8;
    out[pos + 2 * (at + k) + 1] = g & 255;
  });
}

// ---------------------------------------------------------------------------------------------
// The value-level API.

const utf8 = new TextEncoder();

function ascii(text: string): Uint8Array {
  const b = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 127) throw new FormatError(`not ASCII: "${text}"`);
    b[i] = c;
  }
  return b;
}

/** A timestamptz printed by PostgreSQL (see writeTimestamptz) as microseconds since 2000-01-01 UTC. */
export function parseTimestamptz(text: string): bigint {
  const b = new Uint8Array(8);
  const src = ascii(text);
  writeTimestamptz(b, 0, src, 0, src.length);
  return new DataView(b.buffer).getBigInt64(0);
}

/** An inet printed by PostgreSQL, in its binary form (see writeInet). */
export function parseInet(text: string): Uint8Array {
  const b = new Uint8Array(20);
  const src = ascii(text);
  return b.slice(0, writeInet(b, 0, src, 0, src.length));
}

/** A bytea printed by PostgreSQL ('\x...', bytea_output = hex) or plain hex. */
export function parseBytea(text: string): Uint8Array {
  const src = ascii(text);
  const b = new Uint8Array(src.length >> 1);
  return b.subarray(0, writeHex(b, 0, src, 0, src.length));
}

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (bytes[i]! < 16 ? '0' : '') + bytes[i]!.toString(16);
  return s;
}

/** The bytes the data digest hashes: payload LF before LF after, as PostgreSQL prints the jsonb; '' for SQL NULL. */
export function dataDigestInput(payload: string | null, before: string | null, after: string | null): Uint8Array {
  return utf8.encode(`${payload ?? ''}\n${before ?? ''}\n${after ?? ''}`);
}

/** SHA-256 of payload, before and after (chainlog.data_digest()). Pass the jsonb text exactly as PostgreSQL prints it. */
export function dataDigest(
  payload: string | null,
  before: string | null,
  after: string | null,
  sha256: Sha256 = defaultSha256,
): Uint8Array {
  return sha256(dataDigestInput(payload, before, after));
}

function textField(parts: Uint8Array[], value: string | null, name: string): void {
  if (value === null) {
    parts.push(NULL_TEXT);
    return;
  }
  if (value.includes('\0')) throw new FormatError(`${name} contains a NUL character, which PostgreSQL text cannot hold`);
  parts.push(utf8.encode(value), TERMINATOR);
}

const NULL_TEXT = Uint8Array.of(0xff);
const TERMINATOR = Uint8Array.of(0x00);
const NULL_BYTE = Uint8Array.of(0x00);

/** The canonical encoding of an event, format version 1 (chainlog.canonical_bytes()). */
export function canonicalBytes(e: ChainEvent): Uint8Array {
  if (e.prevHash.length !== 32 || e.dataDigest.length !== 32) throw new FormatError('prevHash and dataDigest must be 32 bytes');
  const head = new Uint8Array(HEAD_LENGTH);
  const view = new DataView(head.buffer);
  view.setInt16(0, e.formatVersion);
  head.set(e.prevHash, 2);
  view.setBigInt64(34, e.seq);
  view.setBigInt64(42, e.recordedAt);
  head.set(e.dataDigest, 50);
  const parts: Uint8Array[] = [head];
  if (e.occurredAt === null) {
    parts.push(NULL_BYTE);
  } else {
    const t = new Uint8Array(9);
    t[0] = 1;
    new DataView(t.buffer).setBigInt64(1, e.occurredAt);
    parts.push(t);
  }
  parts.push(e.sourceIp === null ? NULL_BYTE : parseInet(e.sourceIp));
  textField(parts, e.stream, 'stream');
  textField(parts, e.actor, 'actor');
  textField(parts, e.actorType, 'actorType');
  textField(parts, e.eventType, 'eventType');
  textField(parts, e.action, 'action');
  textField(parts, e.result, 'result');
  textField(parts, e.resourceType, 'resourceType');
  textField(parts, e.resourceId, 'resourceId');
  textField(parts, e.requestId, 'requestId');
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** hash = SHA-256(canonicalBytes(e)). */
export function eventHash(e: ChainEvent, sha256: Sha256 = defaultSha256): Uint8Array {
  return sha256(canonicalBytes(e));
}

/** Parses a row as PostgreSQL prints it (TimeZone = UTC) into the typed fields the hash commits to. */
export function parseEventText(t: EventText): ChainEvent {
  return {
    formatVersion: Number(t.formatVersion),
    prevHash: parseBytea(t.prevHash),
    seq: BigInt(t.seq),
    recordedAt: parseTimestamptz(t.recordedAt),
    dataDigest: parseBytea(t.dataDigest),
    stream: t.stream,
    occurredAt: t.occurredAt === null ? null : parseTimestamptz(t.occurredAt),
    actor: t.actor,
    actorType: t.actorType,
    eventType: t.eventType,
    action: t.action,
    result: t.result,
    resourceType: t.resourceType,
    resourceId: t.resourceId,
    sourceIp: t.sourceIp,
    requestId: t.requestId,
  };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Does this row's content match its stored data_digest and hash, if it sat at `asSeq` (default: its
 * own seq)? The same test as chainlog._content_ok().
 */
export function contentMatches(t: EventText, asSeq?: bigint, sha256: Sha256 = defaultSha256): boolean {
  const e = parseEventText(t);
  if (asSeq !== undefined) e.seq = asSeq;
  return (
    equalBytes(dataDigest(t.payload, t.before, t.after, sha256), e.dataDigest) &&
    equalBytes(sha256(canonicalBytes(e)), parseBytea(t.hash))
  );
}
