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

/**
 * How strictly a writer reads its text. ANY_FORM: any text PostgreSQL prints for the type, in any
 * session (the value-level API below). CSV_FORM and JSON_FORM: exactly what chainlog's export writes in
 * its CSV and NDJSON files (src/export.ts pins TimeZone = UTC, DateStyle = ISO, bytea_output = hex), which
 * is all the file verifier accepts: what a reader of the file sees is then what the hash committed to.
 */
export type TextForm = 0 | 1 | 2;
export const ANY_FORM: TextForm = 0;
/** COPY ... (FORMAT csv): '2024-05-01 12:34:56.5+00', '\x' + lowercase hex. */
export const CSV_FORM: TextForm = 1;
/** The NDJSON export: to_json()'s '2024-05-01T12:34:56.5+00:00', plain lowercase hex. */
export const JSON_FORM: TextForm = 2;

/** Writes a (possibly negative) integer count of microseconds, given as seconds and 0..999999, as int64 BE. */
function writeMicros(out: Uint8Array, pos: number, seconds: number, micros: number): number {
  // seconds * 1e6 overflows a double's 53 bits for dates far from 2000, so split the product in
  // 16-bit pieces that stay exact: total = aHi * 2^32 + c. The callers keep seconds within PostgreSQL's
  // range, where the total fits an int64.
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

/** Days in a month of a proleptic Gregorian year (astronomical: 1 BC is year 0, a leap year). */
function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

const DAYS_1970_TO_2000 = 10957;

/**
 * PostgreSQL's timestamptz range, in seconds since 2000-01-01 00:00:00 UTC: from 4714-11-24 00:00:00 UTC
 * BC (MIN_TIMESTAMP) up to, not including, 294277-01-01 00:00:00 UTC (END_TIMESTAMP). Within it the
 * microseconds fit an int64, so no text wraps around to another instant.
 */
const MIN_TIMESTAMP_SECONDS = -211_813_488_000;
const END_TIMESTAMP_SECONDS = 9_223_371_331_200;

/** Does src[i, end) start with `word`? */
function startsWith(src: Uint8Array, i: number, end: number, word: string): boolean {
  if (end - i < word.length) return false;
  for (let k = 0; k < word.length; k++) if (src[i + k] !== word.charCodeAt(k)) return false;
  return true;
}

/** Is src[start, end) exactly `word`? */
function matches(src: Uint8Array, start: number, end: number, word: string): boolean {
  return end - start === word.length && startsWith(src, start, end, word);
}

/** src[i], or -1 at or beyond end: no reader looks past the field it was given. */
function byteAt(src: Uint8Array, i: number, end: number): number {
  return i < end ? src[i]! : -1;
}

function twoDigits(src: Uint8Array, i: number, end: number, what: string): number {
  return digit(src, i, end, what) * 10 + digit(src, i + 1, end, what);
}

/**
 * Writes a timestamptz printed by PostgreSQL as 8 bytes: microseconds since 2000-01-01 00:00:00 UTC,
 * int64 big-endian (what timestamptz_send() gives). Reads the ISO DateStyle form
 * ('2024-03-01 12:00:00.123456+00', '0044-03-15 12:00:00+00 BC') and the JSON/XSD form
 * ('2024-03-01T12:00:00.123456+00:00', '0044-03-15T12:00:00+00:00 BC'), and infinity / -infinity.
 *
 * Only what PostgreSQL prints: a year of 4 digits (zero-padded) or 5 to 6 without a leading zero, a
 * real date (leap years proleptic Gregorian, BC years too), hour 0-23, minute and second 0-59, after a
 * dot 1 to 6 fraction digits, an offset within PostgreSQL's (at most 15:59:59), and an instant within
 * timestamptz's range. ANY_FORM takes either form and any offset (and 'Z'); CSV_FORM and JSON_FORM take
 * only what the export writes in that format: UTC (+00, or +00:00 in JSON) and no trailing zero in the
 * fraction. Never reads at or beyond `end`.
 */
export function writeTimestamptz(out: Uint8Array, pos: number, src: Uint8Array, start: number, end: number, form: TextForm = ANY_FORM): number {
  // PostgreSQL stores infinity as INT64_MAX and -infinity as INT64_MIN.
  if (matches(src, start, end, 'infinity')) return writeU32(out, writeU32(out, pos, 0x7fffffff), 0xffffffff);
  if (matches(src, start, end, '-infinity')) return writeU32(out, writeU32(out, pos, 0x80000000), 0);
  const what = 'timestamptz';
  let i = start;
  let year = 0;
  while (i < end && src[i] !== 45 /* - */ && i - start < 7) {
    year = year * 10 + digit(src, i, end, what);
    i++;
  }
  const yearDigits = i - start;
  if (yearDigits < 4 || yearDigits > 6 || byteAt(src, i, end) !== 45) {
    throw new FormatError(`${what}: expected YYYY-MM-DD (a year of 4 to 6 digits)`, src, end);
  }
  if (yearDigits > 4 && src[start] === C_0) throw new FormatError(`${what}: a year with a leading zero beyond 4 digits, which PostgreSQL never prints`, src, end);
  if (year === 0) throw new FormatError(`${what}: year 0, which PostgreSQL never prints (1 BC is 0001 BC)`, src, end);
  const month = twoDigits(src, i + 1, end, what);
  if (byteAt(src, i + 3, end) !== 45) throw new FormatError(`${what}: expected YYYY-MM-DD`, src, end);
  const day = twoDigits(src, i + 4, end, what);
  i += 6;
  const separator = byteAt(src, i, end);
  if (form === CSV_FORM ? separator !== 32 : form === JSON_FORM ? separator !== 84 /* T */ : separator !== 32 && separator !== 84) {
    throw new FormatError(`${what}: expected ${form === CSV_FORM ? '" "' : form === JSON_FORM ? '"T"' : '" " or "T"'} and a time after the date`, src, end);
  }
  const hour = twoDigits(src, i + 1, end, what);
  if (byteAt(src, i + 3, end) !== 58) throw new FormatError(`${what}: expected HH:MM:SS`, src, end);
  const minute = twoDigits(src, i + 4, end, what);
  if (byteAt(src, i + 6, end) !== 58) throw new FormatError(`${what}: expected HH:MM:SS`, src, end);
  const second = twoDigits(src, i + 7, end, what);
  i += 9;
  let micros = 0;
  if (byteAt(src, i, end) === 46 /* . */) {
    const from = ++i;
    let scale = 100000;
    for (let c = byteAt(src, i, end); c >= C_0 && c <= C_9; c = byteAt(src, ++i, end)) {
      if (scale < 1) throw new FormatError(`${what}: more than 6 fractional digits`, src, end);
      micros += (c - C_0) * scale;
      scale /= 10;
    }
    if (i === from) throw new FormatError(`${what}: a "." without fraction digits`, src, end);
    if (form !== ANY_FORM && src[i - 1] === C_0) {
      throw new FormatError(`${what}: a fraction ending in 0, which PostgreSQL never prints`, src, end);
    }
  }
  let offset = 0;
  if (form !== ANY_FORM) {
    // The export pins TimeZone = UTC, so PostgreSQL prints every timestamp with this offset.
    const utc = form === CSV_FORM ? '+00' : '+00:00';
    if (!startsWith(src, i, end, utc)) {
      throw new FormatError(`${what}: expected the UTC offset ${utc}, the only one an export writes (it pins TimeZone = UTC)`, src, end);
    }
    i += utc.length;
  } else {
    const sign = byteAt(src, i, end);
    if (sign === 90 /* Z */) {
      i++;
    } else if (sign === 43 /* + */ || sign === 45 /* - */) {
      const hours = twoDigits(src, i + 1, end, what);
      let minutes = 0;
      let seconds = 0;
      i += 3;
      if (byteAt(src, i, end) === 58) {
        minutes = twoDigits(src, i + 1, end, what);
        i += 3;
        if (byteAt(src, i, end) === 58) {
          seconds = twoDigits(src, i + 1, end, what);
          i += 3;
        }
      }
      // PostgreSQL's limit (MAX_TZDISP_HOUR): it neither reads nor prints a larger offset.
      if (hours > 15 || minutes > 59 || seconds > 59) {
        throw new FormatError(`${what}: a UTC offset out of range (PostgreSQL's are within 15:59:59)`, src, end);
      }
      offset = hours * 3600 + minutes * 60 + seconds;
      if (sign === 45) offset = -offset;
    } else {
      throw new FormatError(`${what}: expected a UTC offset such as +00`, src, end);
    }
  }
  if (i < end) {
    if (matches(src, i, end, ' BC')) year = 1 - year;
    else throw new FormatError(`${what}: unexpected text after the offset`, src, end);
  }
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
    throw new FormatError(`${what}: not a date and time PostgreSQL prints (month, day, hour, minute or second out of range)`, src, end);
  }
  const seconds = (daysFromCivil(year, month, day) - DAYS_1970_TO_2000) * 86400 + hour * 3600 + minute * 60 + second - offset;
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds >= END_TIMESTAMP_SECONDS) {
    throw new FormatError(`${what}: out of PostgreSQL's range (4714-11-24 BC to 294276-12-31 UTC)`, src, end);
  }
  return writeMicros(out, pos, seconds, micros);
}

/**
 * Writes hex digits as bytes. ANY_FORM: with or without PostgreSQL's '\x' prefix, either case.
 * CSV_FORM: as PostgreSQL prints a bytea ('\x', lowercase). JSON_FORM: plain lowercase hex, as the
 * NDJSON export writes it.
 */
export function writeHex(out: Uint8Array, pos: number, src: Uint8Array, start: number, end: number, form: TextForm = ANY_FORM): number {
  const prefixed = end - start >= 2 && src[start] === 92 && src[start + 1] === 120;
  if (form === CSV_FORM && !prefixed) throw new FormatError('hex: expected "\\x" before the digits, as PostgreSQL prints a bytea', src, end);
  if (form === JSON_FORM && prefixed) throw new FormatError('hex: a "\\x" prefix, which the NDJSON export never writes (plain lowercase hex)', src, end);
  if (prefixed) start += 2;
  if ((end - start) % 2 !== 0) throw new FormatError('hex: odd number of digits', src, end);
  const lower = form !== ANY_FORM;
  for (let i = start; i < end; i += 2) out[pos++] = (hexValue(src, i, end, lower) << 4) | hexValue(src, i + 1, end, lower);
  return pos;
}

function hexValue(src: Uint8Array, i: number, end: number, lowerOnly = false): number {
  const c = i < end ? src[i]! : -1;
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) {
    if (!lowerOnly) return c - 55;
    throw new FormatError(`hex: an uppercase digit at offset ${i}, which PostgreSQL never prints`, src, end);
  }
  throw new FormatError(`hex: not a hex digit at offset ${i}`, src, end);
}

/**
 * Writes an inet printed by PostgreSQL in its binary form (inet_send()): family (2 = IPv4, 3 = IPv6),
 * prefix bits, is_cidr (0 for inet), address length (4 or 16), address bytes. Refuses a number with a
 * leading zero (PostgreSQL never prints one; inet_aton() and others read 010 as octal). CSV_FORM and
 * JSON_FORM take only the text PostgreSQL prints for the address: no /32 (IPv4) or /128 (IPv6), and
 * IPv6 lowercase, compressed as inet_out() does. Never reads at or beyond `end`.
 */
export function writeInet(out: Uint8Array, pos: number, src: Uint8Array, start: number, end: number, form: TextForm = ANY_FORM): number {
  let slash = end;
  let colon = false;
  for (let i = start; i < end; i++) {
    if (src[i] === 47) slash = i;
    else if (src[i] === 58) colon = true;
  }
  const size = colon ? 16 : 4;
  const addr = pos + 4;
  if (colon) parseIPv6(out, addr, src, start, slash, end, form !== ANY_FORM);
  else parseIPv4(out, addr, src, start, slash, end);
  let bits = size * 8;
  if (slash < end) {
    bits = 0;
    if (slash + 1 >= end || end - slash > 4) throw new FormatError('inet: bad prefix length', src, end);
    if (end - slash > 2 && src[slash + 1] === C_0) throw new FormatError('inet: a prefix length with a leading zero, which PostgreSQL never prints', src, end);
    for (let i = slash + 1; i < end; i++) bits = bits * 10 + digit(src, i, end, 'inet');
    if (bits > size * 8) throw new FormatError('inet: prefix length too large', src, end);
    if (form !== ANY_FORM && bits === size * 8) {
      throw new FormatError(`inet: the prefix /${bits}, which PostgreSQL does not print for an inet (the address alone means /${bits})`, src, end);
    }
  }
  out[pos] = colon ? 3 : 2;
  out[pos + 1] = bits;
  out[pos + 2] = 0;
  out[pos + 3] = size;
  return addr + size;
}

/** Four decimal parts of 0-255 without leading zeros, from src[start, end), into out[pos, pos + 4). */
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
      if (digits === 1 && value === 0) {
        throw new FormatError('inet: an IPv4 part with a leading zero, which PostgreSQL never prints (and inet_aton() reads as octal)', src, fullEnd);
      }
      if (digits === 3) throw new FormatError('inet: bad IPv4 address', src, fullEnd);
      value = value * 10 + digit(src, i, fullEnd, 'inet');
      digits++;
    }
  }
  if (part !== 4) throw new FormatError('inet: an IPv4 address has 4 parts', src, fullEnd);
}

/**
 * An IPv6 address from src[start, end) into out[pos, pos + 16), written in place (no allocation): the
 * groups before '::' from the front, those after it moved to the end, the gap zero-filled. An embedded
 * IPv4 tail ('::ffff:192.0.2.1') fills the last 4 bytes. `canonical`: only as PostgreSQL's inet_out()
 * prints it (checkCanonicalIPv6).
 */
function parseIPv6(out: Uint8Array, pos: number, src: Uint8Array, start: number, end: number, fullEnd: number, canonical: boolean): void {
  let n = 0; // groups written
  let gap = -1; // the group '::' stands at
  let dotted = false;
  let i = start;
  if (end - start >= 2 && src[i] === 58 && src[i + 1] === 58) {
    gap = 0;
    i += 2;
  }
  while (i < end) {
    if (n === 8) throw new FormatError('inet: an IPv6 address has 8 groups', src, fullEnd);
    let j = i;
    let dot = false;
    while (j < end && src[j] !== 58) {
      if (src[j] === 46) dot = true;
      j++;
    }
    if (dot) {
      if (j !== end) throw new FormatError('inet: IPv4 part must come last', src, fullEnd);
      if (n > 6) throw new FormatError('inet: an IPv6 address has 8 groups', src, fullEnd);
      parseIPv4(out, pos + 2 * n, src, i, j, fullEnd);
      n += 2;
      dotted = true;
      i = j;
      break;
    }
    if (j === i || j - i > 4) throw new FormatError('inet: bad IPv6 group', src, fullEnd);
    if (canonical && j - i > 1 && src[i] === C_0) {
      throw new FormatError('inet: an IPv6 group with a leading zero, which PostgreSQL never prints', src, fullEnd);
    }
    let v = 0;
    for (let k = i; k < j; k++) {
      if (canonical && src[k]! >= 65 && src[k]! <= 70) throw new FormatError('inet: an uppercase IPv6 digit, which PostgreSQL never prints', src, fullEnd);
      v = (v << 4) | hexValue(src, k, end);
    }
    out[pos + 2 * n] = v >> 8;
    out[pos + 2 * n + 1] = v & 255;
    n++;
    i = j;
    if (i < end) {
      // src[i] is ':'
      if (i + 1 < end && src[i + 1] === 58) {
        if (gap >= 0) throw new FormatError('inet: more than one "::"', src, fullEnd);
        gap = n;
        i += 2;
      } else {
        i += 1;
        if (i === end) throw new FormatError('inet: trailing ":"', src, fullEnd);
      }
    }
  }
  if (gap < 0 ? n !== 8 : n > 7) throw new FormatError('inet: an IPv6 address has 8 groups', src, fullEnd);
  if (gap >= 0) {
    const zeros = 8 - n;
    out.copyWithin(pos + 2 * (gap + zeros), pos + 2 * gap, pos + 2 * n);
    out.fill(0, pos + 2 * gap, pos + 2 * (gap + zeros));
  }
  if (canonical) checkCanonicalIPv6(out, pos, gap, 8 - n, dotted, src, fullEnd);
}

/**
 * The address was written as PostgreSQL prints it (src/port/inet_net_ntop.c): '::' for the first
 * longest run of two or more zero groups and nowhere else, and a dotted IPv4 tail exactly when the
 * first 6 groups are zero or the first 5 are zero and the sixth is ffff.
 */
function checkCanonicalIPv6(out: Uint8Array, pos: number, gap: number, gapGroups: number, dotted: boolean, src: Uint8Array, end: number): void {
  let bestBase = -1;
  let bestLen = 0;
  let runBase = -1;
  for (let g = 0; g < 8; g++) {
    if (out[pos + 2 * g] === 0 && out[pos + 2 * g + 1] === 0) {
      if (runBase < 0) runBase = g;
      if (g - runBase + 1 > bestLen) {
        bestBase = runBase;
        bestLen = g - runBase + 1;
      }
    } else {
      runBase = -1;
    }
  }
  if (bestLen < 2) bestBase = -1;
  if (gap !== bestBase || (gap >= 0 && gapGroups !== bestLen)) {
    throw new FormatError('inet: an IPv6 address not written as PostgreSQL prints it ("::" stands for the longest run of zero groups, and only there)', src, end);
  }
  const mapped = bestBase === 0 && (bestLen === 6 || (bestLen === 5 && out[pos + 10] === 0xff && out[pos + 11] === 0xff));
  if (dotted !== mapped) {
    throw new FormatError(`inet: an IPv6 address not written as PostgreSQL prints it (${mapped ? 'it ends in a dotted IPv4 part' : 'no dotted IPv4 part'} there)`, src, end);
  }
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
