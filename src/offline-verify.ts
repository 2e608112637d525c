// Verifies a stream without trusting chainlog's SQL: the events are read out (COPY from the database, or
// an exported CSV/NDJSON file) and every data digest, hash and link is recomputed here, in TypeScript.
// No chainlog function is called, so a database whose chainlog.verify() or format functions were
// replaced cannot vouch for itself. The report has the shape of chainlog.verify()'s and the same
// classification (sql/00005_verify.sql, ported rule by rule in classify() below).
//
// Speed: from the database the rows come as COPY's binary format, because there every field already is
// what the format hashes (int8send, timestamptz_send, inet_send, raw bytea, UTF-8 text, jsonb text), so
// the canonical bytes are a copy of the fields and nothing is parsed or hex-decoded; PostgreSQL also
// produces binary COPY ~1.7x faster than text (no timestamp formatting, no hex). Exported files (text)
// go through src/format.ts's byte-level writers. Either way one buffer is reused per row; the only
// per-row allocations are the two digests node:crypto returns and the views handed to it. For large
// inputs the two hashes run on worker threads instead (src/hash-workers.ts): the rows' bytes are
// copied into batches, and a chain with any problem is scanned again on this thread to name it.
import { isUtf8 } from 'node:buffer';
import * as nodeCrypto from 'node:crypto';
import { constants as fsConstants, createReadStream } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { Readable } from 'node:stream';
import type pg from 'pg';
import { applyCheckpoint, checkpointWithin, decimalSeq, removedStream, type Checkpoint, type CheckpointArg } from './checkpoint.js';
import { ChainlogError, ChainlogFileFormatError, ChainlogInvalidArgumentError, ChainlogUnknownStreamError, invalidArgument } from './errors.js';
import { copyOut, EXPORT_COLUMNS, readStreamHead, withPinnedSnapshot, type Db, type StreamHead } from './export.js';
import { ContentCheckPool } from './hash-workers.js';
import {
  ANY_FORM,
  contentMatches,
  CSV_FORM,
  eventTextFromColumns,
  FormatError,
  JSON_FORM,
  latin1,
  parseBytea,
  writeHex,
  writeInet,
  writeTimestamptz,
  writeU32,
  type EventText,
  type Sha256,
  type TextForm,
} from './format.js';

export type Problem = 'modified' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'forked';

/** The shape of chainlog.verify()'s row, plus the stream. */
export interface VerifyReport {
  stream: string;
  ok: boolean;
  /** Events verified intact before the first problem (all events checked when ok). */
  checked: number;
  firstBadSeq: number | null;
  problem: Problem | null;
  detail: string | null;
  /**
   * Only from verifyOfflineFile() given `stream`, and only when the file also holds rows of other
   * streams: how many there were, and the names of the first few (SKIPPED_NAMES). Their format was
   * checked like every row's, but they were not verified.
   */
  skipped?: { rows: number; streams: string[] };
}

export interface VerifyProgress {
  /** Rows read so far. */
  rows: number;
  /** Bytes read so far. */
  bytes: number;
  /**
   * 1, or 2 while the input is read a second time: when worker threads found the chain broken, it is
   * read again on one thread to name and classify the first problem, and rows and bytes start over.
   */
  pass: 1 | 2;
}

// crypto.hash() is new in Node 20.12 and 21.7.
const oneShotHash = nodeCrypto.hash as typeof nodeCrypto.hash | undefined;

/**
 * SHA-256 from node:crypto: the one-shot crypto.hash() where Node has it (>= 20.12), createHash()
 * otherwise. On this workload (two hashes of ~130 and ~230 bytes per event) the one-shot call was the
 * fastest of the three we measured (crypto.hash > createHash > @noble/hashes), so the verifier uses it;
 * src/format.ts keeps @noble/hashes as its portable default.
 */
export const nodeSha256: Sha256 = typeof oneShotHash === 'function'
  ? (data: Uint8Array) => oneShotHash('sha256', data, 'buffer')
  : (data: Uint8Array) => nodeCrypto.createHash('sha256').update(data).digest();

/**
 * Whether SHA-256 of `data` is the 32 bytes of `target` at `at`, asking node:crypto for the digest as
 * a latin1 string (one character per byte; `'binary'` is Node's other name for it). A check needs no
 * digest of its own, and on Node 20 the Buffer `nodeSha256` returns costs more than the hashing:
 * ≈ 0.9 µs a call for a ~350-byte input against ≈ 0.4 µs for the string (`bench/workloads/offline.ts`
 * measures both). The hash workers (src/hash-workers.ts) compare the same way.
 */
const nodeSha256Matches: (data: Uint8Array, target: Uint8Array, at: number) => boolean =
  typeof oneShotHash === 'function'
    ? (data, target, at) => latin1Equals32(oneShotHash('sha256', data, 'binary'), target, at)
    : (data, target, at) => latin1Equals32(nodeCrypto.createHash('sha256').update(data).digest('binary'), target, at);

function latin1Equals32(digest: string, target: Uint8Array, at: number): boolean {
  for (let i = 0; i < 32; i++) if (digest.charCodeAt(i) !== target[at + i]) return false;
  return true;
}

const GENESIS = new Uint8Array(32);

// ---------------------------------------------------------------------------------------------
// Problems with the input. A FormatError learns where it happened as it propagates: the field from the
// code reading the value, the seq from the scanner, the line from the parser. verifyOfflineFile() turns
// it into a ChainlogFileFormatError (fileFormatError()).

interface Where {
  line?: number;
  seq?: number;
  field?: string;
  /** The message names the field itself: do not put it in front. */
  named?: boolean;
  hint?: string;
}

type LocatedError = FormatError & Where;

function bad(message: string, where: Where = {}): LocatedError {
  return Object.assign(new FormatError(message), where);
}

/** Adds what `where` knows and the error does not yet; a UTF-8 decoding error becomes a FormatError. */
function locate(e: unknown, where: Where): unknown {
  const err = isDecodeError(e) ? bad('not valid UTF-8 (an export holds only UTF-8 text)') : e;
  if (err instanceof FormatError) {
    const w = err as LocatedError;
    if (w.line === undefined && where.line !== undefined) w.line = where.line;
    if (w.seq === undefined && where.seq !== undefined) w.seq = where.seq;
    if (w.field === undefined && where.field !== undefined) w.field = where.field;
  }
  return err;
}

function isDecodeError(e: unknown): boolean {
  return e instanceof TypeError && (e as { code?: string }).code === 'ERR_ENCODING_INVALID_ENCODED_DATA';
}

const FILE_HINT =
  'The file is not as chainlog export (exportEvents()) writes it, so it cannot be verified: verify the exported file as it was written.';

/** The error verifyOfflineFile() throws for a malformed file: "line 7 (seq 6), recorded_at: what. What to do." */
function fileFormatError(e: unknown): unknown {
  const err = locate(e, {});
  if (!(err instanceof FormatError)) return err;
  const w = err as LocatedError;
  let where = w.line !== undefined ? `line ${w.line}` : '';
  if (w.seq !== undefined) where += where ? ` (seq ${w.seq})` : `seq ${w.seq}`;
  if (w.field !== undefined && !w.named) where += where ? `, ${w.field}` : w.field;
  const what = where ? `${where}: ${w.message}` : w.message;
  const hint = w.hint ?? FILE_HINT;
  return new ChainlogFileFormatError(`${what}${/[.!?]$/.test(what) ? '' : '.'} ${hint}`, {
    code: 'CHAINLOG_BAD_FILE',
    cause: err,
    hint,
    line: w.line,
    seq: w.seq,
    field: w.field,
  });
}

/**
 * A name for a message, unambiguous: JSON-quoted with every character outside printable ASCII escaped,
 * so that names a terminal shows alike ("café" composed and decomposed) read differently.
 */
function quotedName(name: string): string {
  return JSON.stringify(name).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Text for a message: the bytes as UTF-8 (invalid sequences replaced), at most 60 characters. */
function excerpt(b: Uint8Array, start: number, end: number): string {
  const text = lossyDecoder.decode(b.subarray(start, Math.min(end, start + 240)));
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

const lossyDecoder = new TextDecoder('utf-8');
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Row buffers and parsers. A parser writes one row's fields, unescaped, into a RowBuffer and hands it
// to the scanner, which returns the buffer for the next row.

class RowBuffer {
  bytes: Uint8Array = new Uint8Array(4096);
  readonly start: Int32Array;
  readonly end: Int32Array;
  readonly isNull: Uint8Array;
  fields = 0;
  constructor(readonly width: number) {
    this.start = new Int32Array(width);
    this.end = new Int32Array(width);
    this.isNull = new Uint8Array(width);
  }
  /** Room for `extra` more bytes after `used`. */
  reserve(used: number, extra: number): Uint8Array {
    if (used + extra > this.bytes.length) {
      const grown = new Uint8Array(Math.max(this.bytes.length * 2, used + extra + 1024));
      grown.set(this.bytes.subarray(0, used));
      this.bytes = grown;
    }
    return this.bytes;
  }
}

type RowSink = (row: RowBuffer) => RowBuffer;

interface Parser {
  push(chunk: Uint8Array): void;
  end(): void;
  /** The line (from 1) of the file where the row being handed to the sink starts. */
  line(): number;
}

const BINARY_SIGNATURE = [80, 71, 67, 79, 80, 89, 10, 255, 13, 10, 0]; // PGCOPY\n\377\r\n\0

/**
 * COPY ... TO STDOUT (FORMAT binary): a header, then per row a field count and per field a length (-1 for
 * NULL) and the bytes. Fields are not copied: the row points into the chunk it arrived in.
 */
class BinaryCopyParser implements Parser {
  private rest: Uint8Array | null = null;
  private header = false;
  private trailer = false;
  constructor(private readonly row: RowBuffer, private readonly sink: RowSink) {}

  line(): number {
    return 0;
  }

  push(chunk: Uint8Array): void {
    let buf = chunk;
    if (this.rest) {
      buf = new Uint8Array(this.rest.length + chunk.length);
      buf.set(this.rest);
      buf.set(chunk, this.rest.length);
      this.rest = null;
    }
    const len = buf.length;
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let i = 0;
    if (!this.header) {
      if (len < 19) {
        this.rest = buf.slice();
        return;
      }
      if (BINARY_SIGNATURE.some((c, k) => buf[k] !== c)) throw new FormatError('binary COPY: bad signature');
      i = 19 + dv.getInt32(15);
      this.header = true;
    }
    const row = this.row;
    row.bytes = buf;
    const width = row.width;
    rows: while (i + 2 <= len && !this.trailer) {
      const fields = dv.getInt16(i);
      if (fields === -1) {
        this.trailer = true;
        i += 2;
        break;
      }
      if (fields !== width) throw new FormatError(`binary COPY: expected ${width} fields, found ${fields}`);
      let j = i + 2;
      for (let f = 0; f < fields; f++) {
        if (j + 4 > len) break rows;
        const n = dv.getInt32(j);
        j += 4;
        if (n < 0) {
          row.isNull[f] = 1;
          row.start[f] = row.end[f] = j;
        } else {
          if (j + n > len) break rows;
          row.isNull[f] = 0;
          row.start[f] = j;
          row.end[f] = j + n;
          j += n;
        }
      }
      row.fields = fields;
      this.sink(row);
      i = j;
    }
    if (i < len) this.rest = buf.slice(i);
  }

  end(): void {
    if (!this.trailer) throw new FormatError('binary COPY: the data ends before the trailer');
  }
}

/** Newlines in src[from, to). */
function countNewlines(src: Uint8Array, from: number, to: number): number {
  let n = 0;
  for (let i = src.indexOf(10, from); i !== -1 && i < to; i = src.indexOf(10, i + 1)) n++;
  return n;
}

/** Bytes that end a run of unquoted CSV text: LF, CR, '"' and ','. */
const CSV_STOP = new Uint8Array(256);
for (const c of [10, 13, 34, 44]) CSV_STOP[c] = 1;

/**
 * PostgreSQL CSV (COPY ... FORMAT csv, HEADER): an unquoted empty field is NULL, "" is an empty string.
 * Strict where readers differ: a quote may only open a value or close it (doubled inside it), and a
 * carriage return outside quotes may only come right before a newline. Lines end in LF or CRLF.
 */
class CsvParser implements Parser {
  private field = 0;
  private p = 0;
  // 0: start of field, 1: unquoted, 2: quoted, 3: quote seen inside quoted, 4: CR seen outside quotes
  private state = 0;
  private quoted = false;
  /** Newlines in the chunks before the current one. */
  private linesBefore = 0;
  // Where the parser is (for line()): the chunk, the position in it, the row being filled and its length.
  private chunk: Uint8Array = new Uint8Array(0);
  private at = 0;
  private current: RowBuffer;
  private used = 0;
  /** The columns' names (the header's, once read), for messages. */
  names: readonly string[] = [];
  constructor(private row: RowBuffer, private readonly sink: RowSink) {
    this.current = row;
  }

  /** The line where the current row starts: the line at `at`, less the newlines inside its quoted values. */
  line(): number {
    const r = this.current;
    return this.linesBefore + countNewlines(this.chunk, 0, this.at) + 1 - countNewlines(r.bytes, 0, this.used);
  }

  push(chunk: Uint8Array): void {
    let row = this.row;
    let out = row.reserve(this.p, chunk.length + 2);
    let { field, p, state, quoted } = this;
    const n = chunk.length;
    this.chunk = chunk;
    let i = 0;
    try {
      for (; i < n; i++) {
        let c = chunk[i]!;
        if (state === 2) {
          // Inside quotes: copy up to the next quote in one tight loop.
          while (c !== 34) {
            out[p++] = c;
            if (++i === n) break;
            c = chunk[i]!;
          }
          if (i === n) break;
          state = 3;
          continue;
        }
        if (state === 3) {
          if (c === 34) {
            out[p++] = 34;
            state = 2;
            continue;
          }
          if (c !== 44 && c !== 10 && c !== 13) {
            throw bad('text after the closing quote of a value (a quoted value ends at its closing quote)', { field: this.names[field] });
          }
          state = 1; // the closing quote; c is a delimiter, handled below
        }
        if (state === 4 && c !== 10) {
          throw bad('a carriage return that does not end the line (an export quotes a value holding one)', { field: this.names[field] });
        }
        if (c === 44 || c === 10) {
          if (field >= row.width) throw bad(`more than ${row.width} values on the line`);
          row.end[field] = p;
          row.isNull[field] = !quoted && p === row.start[field] ? 1 : 0;
          quoted = false;
          state = 0;
          field++;
          if (c === 10) {
            row.fields = field;
            this.at = i;
            this.current = row;
            this.used = p;
            row = this.sink(row);
            out = row.reserve(0, chunk.length - i + 2);
            field = 0;
            p = 0;
            row.start[0] = 0;
          } else {
            row.start[field] = p;
          }
        } else if (c === 13) {
          state = 4;
        } else if (c === 34) {
          if (state !== 0) {
            throw bad('a quote inside an unquoted value (an export quotes the whole value and doubles the quote)', { field: this.names[field] });
          }
          state = 2;
          quoted = true;
        } else {
          // Unquoted text: copy up to the next delimiter, quote or CR in one tight loop; those are handled above.
          state = 1;
          out[p++] = c;
          while (i + 1 < n && CSV_STOP[(c = chunk[i + 1]!)] === 0) {
            out[p++] = c;
            i++;
          }
        }
      }
    } catch (e) {
      this.at = i;
      this.current = row;
      this.used = p;
      throw locate(e, { line: this.line() });
    }
    this.linesBefore += countNewlines(chunk, 0, n);
    this.row = row;
    Object.assign(this, { field, p, state, quoted });
  }

  end(): void {
    if (this.field !== 0 || this.p !== 0 || this.state !== 0) {
      if (this.state === 2) {
        this.at = this.chunk.length;
        throw bad('the file ends inside a quoted value', { line: this.line(), field: this.names[this.field] });
      }
      this.push(Uint8Array.of(10)); // a last line without its newline
    }
  }
}

// The kinds of NDJSON values, as the export writes them.
const TEXT = 0; // a JSON string (text, timestamps, inet, hex), decoded; null is SQL NULL
const INT = 1; // a JSON number written as an integer (id, seq, format_version)
const JSONB = 2; // payload, before, after: any JSON value, kept as written

/** The columns an event always has (NOT NULL in chainlog.events): a line must give each of them. */
const REQUIRED_COLUMNS = new Set([
  'id', 'stream', 'seq', 'recorded_at', 'actor', 'actor_type', 'event_type', 'action', 'result', 'format_version',
  'data_digest', 'prev_hash', 'hash',
]);

interface NdjsonKey {
  name: string;
  bytes: Uint8Array;
  col: number;
  kind: number;
  bit: number;
}

/**
 * NDJSON as exportEvents() writes it: one JSON object per line, whose keys are columns, each at most once;
 * a column left out (or, but for payload, before and after, null) is SQL NULL. payload, before and after
 * keep the exact text of their value in the line (whatever its JSON type), which is what PostgreSQL printed
 * and the data digest hashes. Other strings are decoded; numbers are kept as written.
 *
 * Strict JSON (RFC 8259) outside the jsonb values, whose bytes the hash covers: keys are matched as
 * bytes, and decoded only when they hold an escape; an unknown or repeated key, a bad escape, a raw
 * control character, a value of the wrong JSON type and anything after the closing "}" are errors.
 */
class NdjsonParser implements Parser {
  /** The start of a line that continues in the next chunk. */
  private partial = new Uint8Array(4096);
  private n = 0;
  /** The number of the line being parsed. */
  private lineNo = 0;
  /** Each column's key as bytes, and which column the next key usually names (exports keep one order). */
  private readonly keys: NdjsonKey[];
  private readonly byName: Map<string, NdjsonKey>;
  private readonly required: number;
  private guess = 0;
  constructor(
    private row: RowBuffer,
    private readonly sink: RowSink,
    columns: readonly string[],
  ) {
    this.keys = columns.map((name, col) => ({
      name,
      bytes: utf8Encoder.encode(name),
      col,
      kind: isJsonb(name) ? JSONB : name === 'id' || name === 'seq' || name === 'format_version' ? INT : TEXT,
      bit: 2 ** col,
    }));
    this.byName = new Map(this.keys.map((k) => [k.name, k]));
    this.required = this.keys.reduce((m, k) => (REQUIRED_COLUMNS.has(k.name) ? m | k.bit : m), 0);
  }

  line(): number {
    return this.lineNo;
  }

  push(chunk: Uint8Array): void {
    let from = 0;
    try {
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, from)) {
        this.lineNo++;
        if (this.n === 0) {
          this.parseLine(chunk, from, nl); // the whole line is in this chunk: parse it where it lies
        } else {
          this.append(chunk, from, nl);
          this.parseLine(this.partial, 0, this.n);
          this.n = 0;
        }
        from = nl + 1;
      }
    } catch (e) {
      throw locate(e, { line: this.lineNo });
    }
    this.append(chunk, from, chunk.length);
  }

  end(): void {
    if (this.n > 0) {
      this.lineNo++;
      try {
        this.parseLine(this.partial, 0, this.n);
      } catch (e) {
        throw locate(e, { line: this.lineNo });
      }
    }
    this.n = 0;
  }

  private append(chunk: Uint8Array, from: number, to: number): void {
    if (this.n + (to - from) > this.partial.length) {
      const grown = new Uint8Array(Math.max(this.partial.length * 2, this.n + (to - from)));
      grown.set(this.partial.subarray(0, this.n));
      this.partial = grown;
    }
    this.partial.set(chunk.subarray(from, to), this.n);
    this.n += to - from;
  }

  /**
   * The column named by the key between the quotes at src[i] and src[keyEnd - 1]. Compared as bytes,
   * starting from the key that usually comes next: an export writes its keys in column order and leaves
   * out those of SQL NULL values. A key that matches no column's bytes is decoded if it holds an escape
   * ("\u0061ctor" is "actor" to every JSON reader), else it is unknown.
   */
  private keyAt(src: Uint8Array, i: number, keyEnd: number): NdjsonKey {
    const length = keyEnd - i - 2;
    const keys = this.keys;
    for (let t = 0; t < keys.length; t++) {
      const at = (this.guess + t) % keys.length;
      const k = keys[at]!;
      if (k.bytes.length !== length) continue;
      let same = true;
      for (let j = 0; j < length && same; j++) same = k.bytes[j] === src[i + 1 + j];
      if (same) {
        this.guess = (at + 1) % keys.length;
        return k;
      }
    }
    const raw = src.subarray(i, keyEnd);
    let name: string;
    try {
      name = JSON.parse(utf8Decoder.decode(raw)) as string;
    } catch {
      throw bad(`the key ${excerpt(raw, 0, raw.length)} is not a valid JSON string (a bad escape, or not UTF-8)`);
    }
    const k = this.byName.get(name);
    if (k) return k;
    throw bad(`unknown key ${JSON.stringify(name)}: an export writes only the columns ${[...this.byName.keys()].join(', ')}`, {
      field: name,
      named: true,
    });
  }

  private parseLine(src: Uint8Array, start: number, end: number): void {
    if (end > start && src[end - 1] === 13) end--;
    let i = skipSpace(src, start, end);
    if (i === end) return; // blank line
    const row = this.row;
    const out = row.reserve(0, end - start + 16); // unescaping only shrinks
    row.isNull.fill(1);
    row.fields = row.width;
    let p = 0;
    let seen = 0;
    let given = 0;
    let key: NdjsonKey | undefined;
    try {
      if (src[i] !== 123) throw bad('a line must be one JSON object, starting with "{"');
      i = skipSpace(src, i + 1, end);
      if (src[i] !== 125) {
        for (;;) {
          key = undefined;
          if (src[i] !== 34) throw bad('expected a key (a string in double quotes)');
          const keyEnd = stringEnd(src, i, end);
          key = this.keyAt(src, i, keyEnd);
          if ((seen & key.bit) !== 0) {
            throw bad(`the key "${key.name}" appears twice in the object (JSON readers differ on which one counts)`, {
              field: key.name,
              named: true,
            });
          }
          seen |= key.bit;
          i = skipSpace(src, keyEnd, end);
          if (src[i] !== 58) throw bad('expected ":" after the key');
          i = skipSpace(src, i + 1, end);
          const col = key.col;
          if (src[i] === 34) {
            const valueEnd = stringEnd(src, i, end);
            if (key.kind === INT) throw bad('expected a JSON number, as the export writes it, not a string');
            row.start[col] = p;
            if (key.kind === TEXT) p = unescapeJsonString(src, i + 1, valueEnd - 1, out, p);
            else {
              out.set(src.subarray(i, valueEnd), p); // jsonb: a JSON string keeps its exact text too
              p += valueEnd - i;
            }
            row.end[col] = p;
            row.isNull[col] = 0;
            given |= key.bit;
            i = valueEnd;
          } else {
            const valueEnd = rawEnd(src, i, end);
            if (valueEnd === i) throw bad('expected a value');
            const isNull = valueEnd - i === 4 && src[i] === 110 && src[i + 1] === 117 && src[i + 2] === 108 && src[i + 3] === 108;
            if (key.kind === JSONB || !isNull) {
              // jsonb keeps its exact text (JSON null included); a number is checked where it is read.
              if (key.kind === TEXT) throw bad('expected a JSON string, as the export writes it');
              row.start[col] = p;
              out.set(src.subarray(i, valueEnd), p);
              p += valueEnd - i;
              row.end[col] = p;
              row.isNull[col] = 0;
              given |= key.bit;
            } // else a null outside jsonb: SQL NULL
            i = valueEnd;
          }
          i = skipSpace(src, i, end);
          if (src[i] === 44) {
            i = skipSpace(src, i + 1, end);
            continue;
          }
          if (src[i] === 125) break;
          throw bad('expected "," or "}" after the value');
        }
      }
      key = undefined;
      if (skipSpace(src, i + 1, end) !== end) throw bad('text after the closing "}" of the object (one object per line)');
    } catch (e) {
      throw locate(e, { field: key?.name });
    }
    if ((given & this.required) !== this.required) {
      const missing = this.keys.find((k) => (given & k.bit) === 0 && REQUIRED_COLUMNS.has(k.name))!;
      throw bad(`the key "${missing.name}" is missing or null, but every event has a ${missing.name}`, { field: missing.name, named: true });
    }
    for (let c = 0; c < row.width; c++) if (row.isNull[c]) row.start[c] = row.end[c] = 0;
    this.row = this.sink(row);
  }
}

function isJsonb(column: string): boolean {
  return column === 'payload' || column === 'before' || column === 'after';
}

/** JSON whitespace: space, tab, CR (LF ends the line). */
function skipSpace(src: Uint8Array, i: number, end: number): number {
  while (i < end && (src[i] === 32 || src[i] === 9 || src[i] === 13)) i++;
  return i;
}

/** Position after the closing quote of the JSON string starting at i. */
function stringEnd(src: Uint8Array, i: number, end: number): number {
  for (i++; i < end; i++) {
    const c = src[i]!;
    // Two comparisons for most bytes: '"', space and control characters are all <= 34.
    if (c <= 34) {
      if (c === 34) return i + 1;
      if (c < 32) throw controlCharacter(c);
    } else if (c === 92) i++;
  }
  throw bad('unterminated string');
}

function controlCharacter(c: number): LocatedError {
  return bad(`a raw control character (0x${c.toString(16).padStart(2, '0')}) in a string: JSON escapes them`);
}

/** Position after a non-string JSON value (number, literal, object or array) starting at i. */
function rawEnd(src: Uint8Array, i: number, end: number): number {
  let depth = 0;
  for (; i < end; i++) {
    const c = src[i]!;
    if (c === 34) i = stringEnd(src, i, end) - 1;
    else if (c === 123 || c === 91) depth++;
    else if (c === 125 || c === 93) {
      if (depth === 0) return i;
      depth--;
      if (depth === 0) return i + 1;
    } else if (depth === 0 && (c === 44 || c === 32 || c === 9 || c === 13)) return i;
  }
  if (depth !== 0) throw bad('unterminated object or array');
  return i;
}

/**
 * Decodes the JSON string body src[i, end) into out at p. Kept this small so that V8 inlines it into
 * parseLine: most values hold no escape, and the first one hands the rest to unescapeRest().
 */
function unescapeJsonString(src: Uint8Array, i: number, end: number, out: Uint8Array, p: number): number {
  while (i < end) {
    const c = src[i]!;
    if (c === 92) return unescapeRest(src, i, end, out, p);
    out[p++] = c;
    i++;
  }
  return p;
}

/** unescapeJsonString() from the first backslash on; refuses what JSON or PostgreSQL text cannot hold. */
function unescapeRest(src: Uint8Array, i: number, end: number, out: Uint8Array, p: number): number {
  while (i < end) {
    const c = src[i++]!;
    if (c !== 92) {
      out[p++] = c;
      continue;
    }
    const e = src[i++]!;
    switch (e) {
      case 34:
      case 47:
      case 92: out[p++] = e; break;
      case 98: out[p++] = 8; break;
      case 102: out[p++] = 12; break;
      case 110: out[p++] = 10; break;
      case 114: out[p++] = 13; break;
      case 116: out[p++] = 9; break;
      case 117: {
        let cp = hex4(src, i, end);
        i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          const low = src[i] === 92 && src[i + 1] === 117 ? hex4(src, i + 2, end) : -1;
          if (low < 0xdc00 || low > 0xdfff) throw bad('a lone UTF-16 surrogate in a \\u escape: it is not a character');
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          i += 6;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          throw bad('a lone UTF-16 surrogate in a \\u escape: it is not a character');
        } else if (cp === 0) {
          throw bad('a NUL character (\\u0000): PostgreSQL text cannot hold one');
        }
        p = utf8Encode(cp, out, p);
        break;
      }
      default:
        throw bad(`an invalid escape "\\${String.fromCharCode(e)}" (JSON has \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)`);
    }
  }
  return p;
}

/** The four hex digits at src[i, i + 4) before end, as a number. */
function hex4(src: Uint8Array, i: number, end: number): number {
  if (i + 4 > end) throw bad('an invalid \\u escape: it takes four hex digits');
  let v = 0;
  for (let k = i; k < i + 4; k++) {
    const c = src[k]!;
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
    if (d < 0) throw bad('an invalid \\u escape: it takes four hex digits');
    v = (v << 4) | d;
  }
  return v;
}

function utf8Encode(cp: number, out: Uint8Array, p: number): number {
  if (cp < 0x80) out[p++] = cp;
  else if (cp < 0x800) {
    out[p++] = 0xc0 | (cp >> 6);
    out[p++] = 0x80 | (cp & 63);
  } else if (cp < 0x10000) {
    out[p++] = 0xe0 | (cp >> 12);
    out[p++] = 0x80 | ((cp >> 6) & 63);
    out[p++] = 0x80 | (cp & 63);
  } else {
    out[p++] = 0xf0 | (cp >> 18);
    out[p++] = 0x80 | ((cp >> 12) & 63);
    out[p++] = 0x80 | ((cp >> 6) & 63);
    out[p++] = 0x80 | (cp & 63);
  }
  return p;
}

/** The values a column may hold, as numbers (exact below 2^53) and exactly. */
interface IntRange {
  min: number;
  max: number;
  exactMin: bigint;
  exactMax: bigint;
}

function intRange(min: bigint, max: bigint): IntRange {
  return { min: Number(min), max: Number(max), exactMin: min, exactMax: max };
}

const SMALLINT = intRange(-32768n, 32767n);
/** A seq: from 1 (a stream's first event), and below 2^53 so that it is exact as a number. */
const SEQ = intRange(1n, BigInt(Number.MAX_SAFE_INTEGER));
const INT8 = intRange(-(2n ** 63n), 2n ** 63n - 1n);

/**
 * A decimal integer as PostgreSQL prints one (an optional '-', then digits without a leading zero)
 * within `range`: compared as a double while that is exact (under 16 digits), else as a BigInt.
 */
function parseInteger(b: Uint8Array, s: number, e: number, field: string, range: IntRange): number {
  let i = s;
  const negative = b[i] === 45;
  if (negative) i++;
  if (i === e) throw bad(e === s ? 'missing: expected an integer' : 'expected an integer', { field });
  if (b[i] === 48 && e - i > 1) throw bad(`an integer with a leading zero (${excerpt(b, s, e)}), which PostgreSQL never prints`, { field });
  let v = 0;
  for (let k = i; k < e; k++) {
    const d = b[k]! - 48;
    if (d < 0 || d > 9) throw bad(`expected an integer, not ${excerpt(b, s, e)}`, { field });
    v = v * 10 + d;
  }
  if (negative) {
    if (v === 0) throw bad('expected an integer, not "-0"', { field });
    v = -v;
  }
  const inRange = e - i < 16 ? v >= range.min && v <= range.max : exactlyIn(BigInt(latin1(b, s, e)), range);
  if (!inRange) throw bad(`${latin1(b, s, e)} is out of range (${range.exactMin}..${range.exactMax})`, { field });
  return v;
}

function exactlyIn(v: bigint, range: IntRange): boolean {
  return v >= range.exactMin && v <= range.exactMax;
}

// ---------------------------------------------------------------------------------------------
// The scan: one pass in (seq, id) order, as chainlog.verify()'s content and link checks.

type Column = (typeof EXPORT_COLUMNS)[number];

/** The canonical text fields, in format order (docs/FORMAT.md). */
const TEXT_FIELDS = [
  'stream', 'actor', 'actor_type', 'event_type', 'action', 'result', 'resource_type', 'resource_id', 'request_id',
] as const satisfies readonly Column[];

interface ScanOptions {
  columns: readonly string[];
  sha256: Sha256;
  /** Check only rows up to this seq (later rows may still serve as neighbours). */
  limitSeq: number;
  /** The seq the first row should have; above 1 its prev_hash is taken on trust (a partial export). */
  fromSeq: number;
  /** Collect what classification needs from the rows themselves (files), not from later queries. */
  collectNeighbours: boolean;
  /** Rows come from COPY's binary format (BinaryCopyParser), not text. */
  binary?: boolean;
  /** Text rows (a file): the form its values must have, CSV_FORM or JSON_FORM (format.ts). */
  form?: TextForm;
  /**
   * The first row must be at fromSeq (a partial export, whose first prev_hash is taken on trust):
   * a file that starts elsewhere is refused rather than judged against a start it does not have.
   */
  startsAtFromSeq?: boolean;
  /**
   * Hand the content checks to these worker threads and check only the links here. The scan then
   * cannot tell a content problem's position: the caller scans again without a pool on any problem.
   */
  contentPool?: ContentCheckPool;
  /** The line of the file the current row starts on (files), for the report of lines out of order. */
  line?: () => number;
  /** Keep the hash of the intact event at this seq (a checkpoint's), as watchedHash. */
  watchSeq?: number;
}

/** Rows of a file out of (seq, id) order: an export writes them in order, so the file was edited. */
interface Disorder {
  /** The seq of the row that came too late. */
  seq: number;
  /** The seq of the row before it. */
  after: number;
  line: number;
  /** The row repeats one before it (same id, or same seq and hash). */
  repeat: boolean;
  /** Events verified intact with a seq below `seq`. */
  checked: number;
}

interface Neighbourhood {
  checkedBefore(k: number): Promise<number>;
  /** The rows at seq, in (seq, id) order. */
  rowsAt(seq: number): Promise<EventText[]>;
  nextPresent(k: number): Promise<number | null>;
  /** The smallest seq other than k of a row whose hash is `hash`. */
  linkedSeq(hash: Uint8Array, k: number): Promise<number | null>;
  /** The smallest seq above k + 1 of a row whose prev_hash is `hash` (names it as its predecessor). */
  successorSeq(hash: Uint8Array, k: number): Promise<number | null>;
  /** The largest seq stored (read, for a file), whatever upToSeq says. */
  lastStoredSeq(): Promise<number | null>;
}

class Scanner implements Neighbourhood {
  readonly ring: RowBuffer[];
  private ri = 0;
  private readonly ringSeq = [0, 0, 0];
  private readonly col: Record<Column, number>;
  private readonly textCols: number[];
  /** payload, before and after: the data digest's input. */
  private readonly jsonCols: number[];
  private canon = new Uint8Array(1024);
  private digestInput = new Uint8Array(4096);
  private digestLength = 0;
  private readonly stored = new Uint8Array(32);
  private readonly prevHash = new Uint8Array(32);
  private prevSeq: number;
  private started = false;
  private readonly scratch = new Uint8Array(32);

  /** Rows read, rows checked (seq <= limit), the first broken position, the last row checked. */
  rows = 0;
  checked = 0;
  k: number | null = null;
  lastSeq = 0;
  /** The largest seq of the rows read, checked or not. */
  private maxSeq = 0;
  readonly lastHash = new Uint8Array(32);
  /** The seq of a checkpoint (options.watchSeq, or set before the first row of a file is checked). */
  watchSeq: number | undefined;
  /** The hash (hex) of the event at watchSeq, once it was checked intact. */
  watchedHash: string | null = null;
  /** Set when a file's rows are out of order; the rows after it are no longer checked. */
  disorder: Disorder | null = null;
  /** Rows of other streams a file held (skipOther()), and the first SKIPPED_NAMES of their names. */
  skippedRows = 0;
  readonly skippedStreams: string[] = [];
  // Classification context, when collecting from the rows (files).
  private rowsBeforeK = 0;
  private atK: EventText[] = [];
  private beforeK: EventText | null = null;
  private afterK: EventText | null = null;
  private firstAfterK: number | null = null;
  private linkTarget: Uint8Array | null = null;
  private linkedAfterK: number | null = null;
  private successorTarget: Uint8Array | null = null;
  private successorAfterK: number | null = null;
  private readonly scratchPrev = new Uint8Array(32);
  private hashes = new Uint8Array(32 * 1024);
  /** Whether SHA-256 of some bytes is the 32 bytes at a place: without a Buffer per call for node:crypto. */
  private readonly sha256Matches: (data: Uint8Array, target: Uint8Array, at: number) => boolean;

  constructor(private readonly o: ScanOptions) {
    this.sha256Matches = o.sha256 === nodeSha256
      ? nodeSha256Matches
      : (data, target, at) => equal32(o.sha256(data), 0, target, at);
    const index = new Map(o.columns.map((c, i) => [c, i]));
    const missing = EXPORT_COLUMNS.filter((c) => c !== 'id' && !index.has(c));
    if (missing.length > 0) throw bad(`the input lacks the columns ${missing.join(', ')}`);
    this.col = Object.fromEntries(EXPORT_COLUMNS.map((c) => [c, index.get(c) ?? -1])) as Record<Column, number>;
    this.textCols = TEXT_FIELDS.map((c) => this.col[c]);
    this.jsonCols = [this.col.payload, this.col.before, this.col.after];
    this.ring = [0, 1, 2].map(() => new RowBuffer(o.columns.length));
    this.prevSeq = o.fromSeq - 1;
    this.prevHash.set(GENESIS);
    this.watchSeq = o.watchSeq;
  }

  /** The parser's sink: checks one row, returns the buffer for the next one. */
  readonly row: RowSink = (r) => {
    let seq: number | undefined;
    try {
      checkWidth(r);
      seq = this.seqOf(r);
      if (!this.o.binary) this.checkId(r);
      this.rows++;
      if (seq > this.maxSeq) this.maxSeq = seq;
      if (this.rows === 1 && this.o.startsAtFromSeq && seq !== this.o.fromSeq) throw this.wrongStart(seq);
      if (this.o.collectNeighbours && this.rows > 1 && seq <= this.ringSeq[(this.ri + 2) % 3]! && this.disorder === null) {
        this.disorder = this.outOfOrder(r, seq);
      }
      if (this.disorder !== null) {
        // The verdict is made: the rest is only read, and still as strictly (a file's every row).
        if (!this.o.binary) this.encodeText(r, seq);
        return r;
      }
      this.ringSeq[this.ri] = seq;
      if (this.k === null && seq > this.o.limitSeq && this.prevSeq < this.o.limitSeq && seq !== this.prevSeq + 1) {
        // The first row beyond upToSeq, after a gap that starts within it: the chain goes on, so the
        // events from prevSeq + 1 on are missing, not merely outside the range.
        this.k = this.prevSeq + 1;
        this.onBroken(r, seq, this.canon);
      }
      if (this.k === null && seq <= this.o.limitSeq) {
        this.check(r, seq);
      } else {
        // Not verified (beyond upToSeq, or after the first problem), but a file's row is read in full.
        if (!this.o.binary) this.encodeText(r, seq);
        if (this.k !== null && this.o.collectNeighbours) this.collect(r, seq);
      }
    } catch (e) {
      throw locate(e, { seq });
    }
    this.ri = (this.ri + 1) % 3;
    return this.ring[this.ri]!;
  };

  /**
   * A row of another stream, in a file verified for one stream: not verified, but read as strictly as
   * the stream's own rows (every value as the export writes it), so that nothing in the file passes
   * unread.
   */
  skipOther(r: RowBuffer): void {
    let seq: number | undefined;
    try {
      checkWidth(r);
      seq = this.seqOf(r);
      this.checkId(r);
      this.encodeText(r, seq);
    } catch (e) {
      throw locate(e, { seq });
    }
    this.skippedRows++;
  }

  /** The first row of a partial export is not at fromSeq: the file and the fromSeq given disagree. */
  private wrongStart(seq: number): ChainlogInvalidArgumentError {
    return invalidArgument(
      `The file starts at seq ${seq}, not ${this.o.fromSeq} (fromSeq, --from-seq): it cannot be verified from there.`,
      `Give the seq its export printed (the file's first event); if that was ${this.o.fromSeq}, the file lost its first lines since.`,
    );
  }

  /** An id (not hashed) must still be an int8 as PostgreSQL prints it. */
  private checkId(r: RowBuffer): void {
    const f = this.col.id;
    if (r.isNull[f]) throw bad('missing, but every event has an id', { field: 'id' });
    parseInteger(r.bytes, r.start[f]!, r.end[f]!, 'id', INT8);
  }

  /**
   * The row r at `seq` follows a row at the same or a later seq. In (seq, id) order, as exports write
   * them, only a second row at the same seq with a larger id may (a fork or an insertion, which the
   * database can hold too); anything else is a file whose lines were moved or repeated.
   */
  private outOfOrder(r: RowBuffer, seq: number): Disorder | null {
    const before = this.ringSeq[(this.ri + 2) % 3]!;
    if (seq > this.o.limitSeq) return null; // beyond what is verified
    let repeat: boolean;
    if (seq === before) {
      const prev = this.ring[(this.ri + 2) % 3]!;
      const id = (row: RowBuffer) => BigInt(latin1(row.bytes, row.start[this.col.id]!, row.end[this.col.id]!));
      const [a, b] = [id(prev), id(r)];
      if (a < b) return null;
      repeat = a === b;
    } else {
      // A row repeated from further back has the hash kept for its seq (rows before k, in order).
      const kept = seq >= this.o.fromSeq && seq <= this.lastSeq && (this.k === null || seq < this.k);
      repeat = kept && equal32(this.hashes, (seq - this.o.fromSeq) * 32, this.storedHashOf(r, this.scratch), 0);
    }
    const checked = Math.min(this.k === null ? this.checked : this.rowsBeforeK, Math.max(0, seq - this.o.fromSeq));
    return { seq, after: before, line: this.o.line?.() ?? 0, repeat, checked };
  }

  private seqOf(r: RowBuffer): number {
    const s = r.start[this.col.seq]!;
    const e = r.end[this.col.seq]!;
    const b = r.bytes;
    if (this.o.binary) {
      if (e - s !== 8) throw new FormatError('seq: expected an int8');
      const v = (((b[s]! << 24) | (b[s + 1]! << 16) | (b[s + 2]! << 8) | b[s + 3]!) >>> 0) * 4294967296 +
        (((b[s + 4]! << 24) | (b[s + 5]! << 16) | (b[s + 6]! << 8) | b[s + 7]!) >>> 0);
      if (!Number.isSafeInteger(v)) throw new FormatError('seq: beyond 2^53');
      return v;
    }
    try {
      return parseInteger(b, s, e, 'seq', SEQ);
    } catch (err) {
      if (this.o.form === CSV_FORM && e - s === 3 && latin1(b, s, e) === 'seq') {
        throw bad('the header line again: an export has one, at the top (were two files joined?)', { field: 'seq' });
      }
      throw err;
    }
  }

  /** Canonical bytes into canon (returns the length), digest input, stored hash: from text (COPY text, CSV, NDJSON). */
  private encodeText(r: RowBuffer, seq: number): number {
    const b = r.bytes;
    const s = r.start;
    const e = r.end;
    const col = this.col;

    // The canonical bytes, encoded straight from the row's text (docs/FORMAT.md).
    let textBytes = 0;
    for (const t of this.textCols) textBytes += e[t]! - s[t]!;
    if (this.canon.length < textBytes + 256) this.canon = new Uint8Array((textBytes + 256) * 2);
    const c = this.canon;
    // format_version (int2) and seq (int8), big-endian; seq is already parsed and range-checked.
    const version = parseInteger(b, s[col.format_version]!, e[col.format_version]!, 'format_version', SMALLINT);
    c[0] = (version >> 8) & 255;
    c[1] = version & 255;
    // The field being read, for an error's message (the writers do not know which column they read).
    const form = this.o.form ?? ANY_FORM;
    let at: Column = 'prev_hash';
    let p = 2;
    try {
      p = this.hash32(c, p, b, s[col.prev_hash]!, e[col.prev_hash]!, 'prev_hash');
      const high = Math.floor(seq / 4294967296);
      p = writeU32(c, writeU32(c, p, high >>> 0), (seq - high * 4294967296) >>> 0);
      at = 'recorded_at';
      p = writeTimestamptz(c, p, b, s[col.recorded_at]!, e[col.recorded_at]!, form);
      at = 'data_digest';
      p = this.hash32(c, p, b, s[col.data_digest]!, e[col.data_digest]!, 'data_digest');
      if (r.isNull[col.occurred_at]) c[p++] = 0;
      else {
        c[p++] = 1;
        at = 'occurred_at';
        p = writeTimestamptz(c, p, b, s[col.occurred_at]!, e[col.occurred_at]!, form);
      }
      at = 'source_ip';
      if (r.isNull[col.source_ip]) c[p++] = 0;
      else p = writeInet(c, p, b, s[col.source_ip]!, e[col.source_ip]!, form);
      at = 'hash';
      this.hash32(this.stored, 0, b, s[col.hash]!, e[col.hash]!, 'hash');
    } catch (err) {
      throw locate(rereadAlone(err, r, col[at], at, form), { field: at });
    }
    // Text is copied as it is; a byte above 0x7f in it means the value must be checked as UTF-8.
    let high = 0;
    for (const t of this.textCols) {
      if (r.isNull[t]) c[p++] = 0xff;
      else {
        for (let i = s[t]!, end = e[t]!; i < end; i++) high |= c[p++] = b[i]!;
        c[p++] = 0;
      }
    }
    if (high > 0x7f) for (const t of this.textCols) checkUtf8(r, t, this.o.columns[t]!);

    // The data digest's input: payload LF before LF after, '' for SQL NULL.
    const pl = col.payload;
    const bf = col.before;
    const af = col.after;
    // jsonb's text is never empty: in CSV, SQL NULL is an unquoted empty field, and "" is no JSON value.
    for (const f of this.jsonCols) {
      if (e[f] === s[f] && !r.isNull[f]) {
        throw bad('an empty value (""), which jsonb never is: SQL NULL is an unquoted empty field', { field: this.o.columns[f]! });
      }
    }
    const n = e[pl]! - s[pl]! + e[bf]! - s[bf]! + e[af]! - s[af]! + 2;
    if (this.digestInput.length < n) this.digestInput = new Uint8Array(n * 2);
    const d = this.digestInput;
    let q = 0;
    high = 0;
    for (let i = s[pl]!, end = e[pl]!; i < end; i++) high |= d[q++] = b[i]!;
    d[q++] = 10;
    for (let i = s[bf]!, end = e[bf]!; i < end; i++) high |= d[q++] = b[i]!;
    d[q++] = 10;
    for (let i = s[af]!, end = e[af]!; i < end; i++) high |= d[q++] = b[i]!;
    if (high > 0x7f) for (const f of this.jsonCols) checkUtf8(r, f, this.o.columns[f]!);
    this.digestLength = q;
    return p;
  }


  /**
   * The same from COPY's binary format, where every field already is what the format hashes: int2send,
   * int8send, timestamptz_send and inet_send are the canonical forms, bytea is raw, text is UTF-8, and
   * jsonb is a version byte (1) followed by the text PostgreSQL prints.
   */
  private encodeBinary(r: RowBuffer): number {
    const b = r.bytes;
    const s = r.start;
    const e = r.end;
    const col = this.col;
    let size = 64;
    for (let f = 0; f < r.fields; f++) size += e[f]! - s[f]! + 1;
    if (this.canon.length < size) this.canon = new Uint8Array(size * 2);
    if (this.digestInput.length < size) this.digestInput = new Uint8Array(size * 2);
    const c = this.canon;
    let p = copyField(c, 0, r, col.format_version, 2);
    p = copyField(c, p, r, col.prev_hash, 32);
    p = copyField(c, p, r, col.seq, 8);
    p = copyField(c, p, r, col.recorded_at, 8);
    p = copyField(c, p, r, col.data_digest, 32);
    if (r.isNull[col.occurred_at]) c[p++] = 0;
    else {
      c[p++] = 1;
      p = copyField(c, p, r, col.occurred_at, 8);
    }
    if (r.isNull[col.source_ip]) c[p++] = 0;
    else p = copyField(c, p, r, col.source_ip, -1);
    for (const t of this.textCols) {
      if (r.isNull[t]) c[p++] = 0xff;
      else {
        for (let i = s[t]!, end = e[t]!; i < end; i++) c[p++] = b[i]!;
        c[p++] = 0;
      }
    }
    const d = this.digestInput;
    let q = 0;
    for (let j = 0; j < 3; j++) {
      const f = this.jsonCols[j]!;
      if (j > 0) d[q++] = 10;
      if (r.isNull[f]) continue;
      if (b[s[f]!] !== 1) throw new FormatError(`jsonb: unknown binary version ${b[s[f]!]}`);
      // One block copy: a jsonb value is often hundreds of bytes, where a byte loop costs more.
      d.set(b.subarray(s[f]! + 1, e[f]!), q);
      q += e[f]! - s[f]! - 1;
    }
    this.digestLength = q;
    copyField(this.stored, 0, r, col.hash, 32);
    return p;
  }

  private check(r: RowBuffer, seq: number): void {
    this.checked++;
    const p = this.o.binary ? this.encodeBinary(r) : this.encodeText(r, seq);
    const c = this.canon;
    const pool = this.o.contentPool;
    if (pool) pool.add(c, p, this.digestInput, this.digestLength, this.stored);
    const contentOk =
      pool !== undefined ||
      (this.sha256Matches(this.digestInput.subarray(0, this.digestLength), c, 50) &&
        this.sha256Matches(c.subarray(0, p), this.stored, 0));
    // The link: seq follows the previous row's, prev_hash is its hash (a partial export's first row is
    // taken on trust).
    const trustedStart = !this.started && this.o.fromSeq > 1;
    const linkOk = seq === this.prevSeq + 1 && (trustedStart || equal32(c, 2, this.prevHash, 0));
    this.started = true;

    if (!contentOk || !linkOk) {
      // In (seq, id) order the first broken row gives the smallest position: its own seq, or for a gap
      // the first missing seq (chainlog.verify(): least(seq, expected_seq)).
      this.k = linkOk ? seq : Math.min(seq, this.prevSeq + 1);
      this.checked--;
      this.onBroken(r, seq, c);
      return;
    }
    if (this.o.collectNeighbours) this.keepHash(seq);
    if (seq === this.watchSeq) this.watchedHash = Buffer.from(this.stored).toString('hex');
    this.prevSeq = seq;
    this.prevHash.set(this.stored);
    this.lastSeq = seq;
    this.lastHash.set(this.stored);
  }

  /** The hash a row stores, into out. */
  private storedHashOf(r: RowBuffer, out: Uint8Array): Uint8Array {
    try {
      this.hash32(out, 0, r.bytes, r.start[this.col.hash]!, r.end[this.col.hash]!, 'hash');
    } catch (err) {
      throw locate(err, { field: 'hash' });
    }
    return out;
  }

  private hash32(out: Uint8Array, p: number, b: Uint8Array, s: number, e: number, name: string): number {
    // A writeHex error gets its field from the caller.
    const q = writeHex(out, p, b, s, e, this.o.form ?? ANY_FORM);
    if (q - p !== 32) throw bad(`expected 32 bytes (64 hex digits), not ${(q - p)}`, { field: name });
    return q;
  }

  private onBroken(r: RowBuffer, seq: number, canon: Uint8Array): void {
    const k = this.k!;
    const prevSameSeq = this.rows > 1 && this.ringSeq[(this.ri + 2) % 3] === seq;
    this.rowsBeforeK = this.checked - (prevSameSeq ? 1 : 0);
    if (!this.o.collectNeighbours) return;
    if (k < seq) {
      this.firstAfterK = seq;
      this.rowsBeforeK = this.checked;
      return;
    }
    // Rows around k: the one before k (kept in the ring), those at k, and later the first at k + 1.
    const back = (n: number) => this.ring[(this.ri + 3 - n) % 3]!;
    const backSeq = (n: number) => this.ringSeq[(this.ri + 3 - n) % 3]!;
    if (prevSameSeq) {
      this.atK.push(this.decode(back(1)));
      if (this.rows > 2 && backSeq(2) === k - 1) this.beforeK = this.decode(back(2));
    } else if (this.rows > 1 && backSeq(1) === k - 1) {
      this.beforeK = this.decode(back(1));
    }
    this.atK.push(this.decode(r));
    this.linkTarget = canon.slice(2, 34);
    this.successorTarget = this.storedHashOf(r, new Uint8Array(32));
  }

  private collect(r: RowBuffer, seq: number): void {
    const k = this.k!;
    if (seq === k) this.atK.push(this.decode(r));
    if (seq === k + 1 && this.afterK === null) this.afterK = this.decode(r);
    if (seq > k && this.firstAfterK === null) this.firstAfterK = seq;
    if (this.linkTarget && this.linkedAfterK === null && seq !== k) {
      this.storedHashOf(r, this.stored);
      if (equal32(this.stored, 0, this.linkTarget, 0)) this.linkedAfterK = seq;
    }
    if (this.successorTarget && this.successorAfterK === null && seq > k + 1) {
      this.hash32(this.scratchPrev, 0, r.bytes, r.start[this.col.prev_hash]!, r.end[this.col.prev_hash]!, 'prev_hash');
      if (equal32(this.scratchPrev, 0, this.successorTarget, 0)) this.successorAfterK = seq;
    }
  }

  private keepHash(seq: number): void {
    const at = (seq - this.o.fromSeq) * 32;
    if (at + 32 > this.hashes.length) {
      const grown = new Uint8Array(this.hashes.length * 2);
      grown.set(this.hashes);
      this.hashes = grown;
    }
    this.hashes.set(this.stored, at);
  }

  decode(r: RowBuffer): EventText {
    const row: Record<string, string | null> = {};
    this.o.columns.forEach((name, i) => {
      row[name] = r.isNull[i] ? null : decodeText(r.bytes, r.start[i]!, r.end[i]!, name);
    });
    return eventTextFromColumns(row);
  }

  // Neighbourhood, from what the scan collected.
  async checkedBefore(): Promise<number> {
    return this.rowsBeforeK;
  }
  async rowsAt(seq: number): Promise<EventText[]> {
    const k = this.k!;
    const found = seq === k ? this.atK : seq === k - 1 ? this.beforeK : seq === k + 1 ? this.afterK : null;
    return Array.isArray(found) ? found : found ? [found] : [];
  }
  async nextPresent(): Promise<number | null> {
    return this.firstAfterK;
  }
  async linkedSeq(hash: Uint8Array, k: number): Promise<number | null> {
    // Rows before k are seq fromSeq..k-1 in order (their links held), so their hashes are indexed by seq.
    for (let i = 0; i < k - this.o.fromSeq; i++) if (equal32(this.hashes, i * 32, hash, 0)) return this.o.fromSeq + i;
    return this.linkedAfterK;
  }
  async successorSeq(): Promise<number | null> {
    return this.successorAfterK;
  }
  async lastStoredSeq(): Promise<number | null> {
    return this.rows === 0 ? null : this.maxSeq;
  }
}

/** Copies field f of a binary row to out at p; `size` is the length it must have (-1: any). */
function copyField(out: Uint8Array, p: number, r: RowBuffer, f: number, size: number): number {
  const s = r.start[f]!;
  const e = r.end[f]!;
  if (r.isNull[f] || (size >= 0 && e - s !== size)) throw new FormatError(`binary COPY: unexpected value in field ${f}`);
  const b = r.bytes;
  for (let i = s; i < e; i++) out[p++] = b[i]!;
  return p;
}

/**
 * The error reading field f of r on its own: format.ts's writers read a field in place and report an
 * offset in (and the text before the end of) the whole row; read alone, both are the value's.
 */
function rereadAlone(err: unknown, r: RowBuffer, f: number, column: Column, form: TextForm): unknown {
  const write = column === 'recorded_at' || column === 'occurred_at' ? writeTimestamptz : column === 'source_ip' ? writeInet : writeHex;
  const value = r.bytes.slice(r.start[f], r.end[f]);
  try {
    write(new Uint8Array(64 + value.length), 0, value, 0, value.length, form);
  } catch (alone) {
    if (alone instanceof FormatError) return alone;
  }
  return err;
}

/** A row must have every column (a CSV line one value per column), before any value of it is read. */
function checkWidth(r: RowBuffer): void {
  if (r.fields !== r.width) throw bad(`expected ${r.width} values on the line, found ${r.fields}`);
}

/** Field f of r must be UTF-8 (called only for values holding a byte above 0x7f). */
function checkUtf8(r: RowBuffer, f: number, field: string): void {
  const s = r.start[f]!;
  const e = r.end[f]!;
  if (!r.isNull[f] && !isUtf8(r.bytes.subarray(s, e))) {
    throw bad(`not valid UTF-8: ${excerpt(r.bytes, s, e)} (an export holds only UTF-8 text)`, { field });
  }
}

/** Text of a field, which must be UTF-8. */
function decodeText(b: Uint8Array, s: number, e: number, field: string): string {
  try {
    return utf8Decoder.decode(b.subarray(s, e));
  } catch (err) {
    if (isDecodeError(err)) throw bad(`not valid UTF-8: ${excerpt(b, s, e)} (an export holds only UTF-8 text)`, { field });
    throw err;
  }
}

function equal32(a: Uint8Array, ai: number, b: Uint8Array, bi: number): boolean {
  for (let i = 0; i < 32; i++) if (a[ai + i] !== b[bi + i]) return false;
  return true;
}

function bytesEqual(a: Uint8Array | null, b: Uint8Array | null): boolean {
  return a !== null && b !== null && a.length === b.length && equal32(a, 0, b, 0);
}

// ---------------------------------------------------------------------------------------------
// Classification: sql/00005_verify.sql's rules, in the same order.

interface Head {
  seq: number;
  hash: Uint8Array;
  /**
   * The head is being recorded by the transaction we run in, at its commit (chainlog.streams'
   * head_pending): its own events lie beyond it, and are not inserted ones.
   */
  pending?: boolean;
}

interface Verdict {
  ok: boolean;
  checked: number;
  firstBadSeq: number | null;
  problem: Problem | null;
  detail: string | null;
}

/**
 * A stream with events and no recorded head (verify() checks this before anything else): none of its
 * events was recorded, whatever their chain looks like, e.g. events moved there from another stream.
 */
function withoutHead(events: number): Verdict {
  return {
    ok: false, checked: 0, firstBadSeq: 1, problem: 'inserted',
    detail: `stream has ${events} events but no recorded head: they were written around chainlog`,
  };
}

/**
 * The end of an intact chain against the recorded head (verify()'s `k is null` branch). Without a head
 * (a file given no expectedHead) the end of the chain is taken as it is; from the database, a stream
 * without one is withoutHead() before this.
 */
function compareWithHead(
  checked: number,
  lastSeq: number,
  lastHash: Uint8Array | null,
  head: Head | null,
  limitSeq: number,
): Verdict {
  const v: Verdict = { ok: true, checked, firstBadSeq: null, problem: null, detail: null };
  const bad = (firstBadSeq: number, problem: Problem, detail: string) =>
    Object.assign(v, { ok: false, firstBadSeq, problem, detail });
  if (head === null) return v;
  if (head.seq > lastSeq && limitSeq > lastSeq) {
    bad(lastSeq + 1, 'truncated', `the recorded head is seq ${head.seq} but the last stored event is seq ${lastSeq}: events ${lastSeq + 1}..${head.seq} are missing`);
  } else if (head.seq < lastSeq && !head.pending) {
    // Also with upToSeq: the events checked stop at it, and any of them beyond the head is forged.
    bad(head.seq + 1, 'inserted', `events ${head.seq + 1}..${lastSeq} lie beyond the recorded head (seq ${head.seq})`);
    v.checked = head.seq;
  } else if (head.seq === lastSeq && !head.pending && !bytesEqual(head.hash, lastHash ?? GENESIS)) {
    bad(lastSeq, 'modified', `event ${lastSeq} does not have the recorded head hash: the chain was rewritten with recomputed hashes up to here`);
    v.checked = lastSeq - 1;
  }
  return v;
}

/** Something is broken at position k: name it by looking at the rows around k. */
async function classify(k: number, head: Head | null, nb: Neighbourhood, sha256: Sha256): Promise<Verdict> {
  const v: Verdict = { ok: false, checked: await nb.checkedBefore(k), firstBadSeq: k, problem: null, detail: null };
  // checked counts the events before the first problem: fewer when that lies before k (the events from
  // it to k - 1 were checked intact and linked, one per seq).
  const say = (problem: Problem, detail: string, firstBadSeq = k) =>
    Object.assign(v, { problem, detail, firstBadSeq, checked: firstBadSeq < k ? v.checked - (k - firstBadSeq) : v.checked });
  const ok = (e: EventText, asSeq: number) => contentMatches(e, BigInt(asSeq), sha256);
  const hashOf = (e: EventText | undefined) => (e ? parseBytea(e.hash) : null);
  const prevOf = (e: EventText | undefined) => (e ? parseBytea(e.prevHash) : null);

  const before = k > 1 ? (await nb.rowsAt(k - 1))[0] : undefined;
  const expectedPrev = k === 1 ? GENESIS : hashOf(before);
  const atK = await nb.rowsAt(k);

  if (atK.length === 0) {
    const next = await nb.nextPresent(k);
    if (head !== null && k > head.seq && next !== null) {
      // Every event up to the recorded head is there: the ones after the gap were stored beyond it.
      return say('inserted', `events from seq ${next} on lie beyond the recorded head (seq ${head.seq}), after a gap`, next);
    }
    return say('deleted', next === k + 1 ? `event ${k} is missing` : `events ${k}..${(next ?? k) - 1} are missing`);
  }
  if (atK.length > 1) {
    // One intact event stored more than once: copies added, not a fork (as chainlog.verify() says).
    if (atK.every((e) => bytesEqual(hashOf(e), hashOf(atK[0])) && ok(e, Number(e.seq)))) {
      return say('inserted', `event ${k} is stored ${atK.length} times: copies of one event`);
    }
    const claimants = atK.filter((e) => bytesEqual(prevOf(e), expectedPrev) && ok(e, Number(e.seq))).length;
    return claimants >= 2
      ? say('forked', `${atK.length} events hold seq ${k} and claim the same predecessor`)
      : say('inserted', `${atK.length} events hold seq ${k}; only one belongs to the chain`);
  }

  const r = atK[0]!;
  const next = (await nb.rowsAt(k + 1))[0];
  const prevRowPrev = prevOf(before);
  const linked = await nb.linkedSeq(parseBytea(r.prevHash), k);
  // The same, counting the genesis hash as seq 0's: r names no stored predecessor when it is the
  // stream's first event, moved up by events put before it (only where the rows start at seq 1).
  const pred = linked ?? (bytesEqual(prevOf(r), GENESIS) && v.checked === k - 1 ? 0 : null);
  const beyondHead = head !== null && k > head.seq;

  if (ok(r, k)) {
    // r is intact but does not link to the event before it.
    if (k > 1 && bytesEqual(prevOf(r), prevRowPrev)) return say('forked', `events ${k - 1} and ${k} both claim event ${k - 2} as their predecessor`);
    if (linked !== null) return say('reordered', `event ${k} links to event ${linked} instead of event ${k - 1}`);
    if (beyondHead) return say('inserted', `event ${k} lies beyond the recorded head (seq ${head!.seq}) and does not link to it`);
    if (k === 1) return say('modified', 'event 1 does not start from the genesis hash');
    return say('modified', `event ${k - 1} no longer has the hash that event ${k} recorded for it: it was changed and its hash recomputed`, k - 1);
  }
  if (beyondHead && linked === null) {
    return say('inserted', `event ${k} lies beyond the recorded head (seq ${head!.seq}) and its hash does not match its content`);
  }
  if (ok(r, k + 1) && next && ok(next, k)) return say('reordered', `events ${k} and ${k + 1} have swapped places`);
  if (next && ok(next, k) && bytesEqual(prevOf(next), expectedPrev)) {
    // The chain skips r: forged, unless a later event still names r as its predecessor and r hashes
    // correctly at the seq before that one (a genuine event moved here from further on).
    const successor = await nb.successorSeq(parseBytea(r.hash), k);
    if (successor !== null && ok(r, successor - 1)) return say('reordered', `event ${k} was recorded at seq ${successor - 1}`);
    return say('inserted', `event ${k} does not belong: the chain continues from event ${k - 1} to the event now at ${k + 1}`);
  }
  if (ok(r, k + 1)) {
    // r belongs one seq later. The event before it in the chain has the hash r names as its
    // predecessor: if a stored event still has it, that event was moved, not removed.
    return linked !== null
      ? say('reordered', `the event recorded at seq ${k} now sits at seq ${linked}, and the events after it were renumbered`)
      : say('deleted', `the event at seq ${k} was removed and later events renumbered to hide the gap`);
  }
  // Events removed from the middle, the later ones renumbered to hide the gap, leave the stream that
  // many events short of its recorded head: r then hashes correctly that many seqs later.
  const last = head === null ? null : await nb.lastStoredSeq();
  const removed = head === null || last === null ? 0 : head.seq - last;
  if (linked === null && removed > 1 && ok(r, k + removed)) {
    return say('deleted', `events ${k}..${k + removed - 1} were removed and later events renumbered to hide the gap`);
  }
  if (pred !== null && ok(r, pred + 1)) {
    // Beyond the recorded head, a copy of a recorded event: the events up to the head are not to blame.
    if (beyondHead) return say('inserted', `event ${k} lies beyond the recorded head (seq ${head!.seq}) and repeats the event recorded at seq ${pred + 1}`);
    // r was recorded right after pred, and the events stored between them (a chain of their own, since
    // k is the first break) were put there: the first of them is the first that does not belong.
    if (pred < k) {
      return pred + 1 === k - 1
        ? say('inserted', `event ${k - 1} does not belong: later events were renumbered to make room for it`, k - 1)
        : say('inserted', `events ${pred + 1}..${k - 1} do not belong: later events were renumbered to make room for them`, pred + 1);
    }
    return say('reordered', `event ${k} was recorded at seq ${pred + 1}`);
  }
  return say('modified', `event ${k} no longer matches its hash`);
}

// ---------------------------------------------------------------------------------------------
// From the database.

export interface VerifyOfflineOptions {
  /**
   * A pool (a connection is borrowed) or a client (a transaction already open on it is joined). In a
   * joined READ COMMITTED transaction each statement has its own snapshot: a problem found while the
   * stream was appended to is then a ChainlogError CHAINLOG_CONCURRENT_APPEND, not a report.
   */
  db: Db;
  stream: string;
  /** Verify only up to this seq, like chainlog.verify(stream, up_to_seq). */
  upToSeq?: number;
  /**
   * A head recorded earlier, outside the database (src/checkpoint.ts): the stream must still hold
   * that event with that hash. Catches a chain rewritten to its end together with its recorded head.
   */
  checkpoint?: CheckpointArg;
  /** Called as rows arrive (every 64 KiB or so). */
  onProgress?: (progress: VerifyProgress) => void;
  /** SHA-256 to use. Default: node:crypto. */
  sha256?: Sha256;
  /**
   * Worker threads that recompute the hashes while this thread reads and checks links. Default: two
   * fewer than the machine's cores (at most 4; none on 2 cores), the server's COPY taking one, for a
   * stream of 10,000 events or more, else none. 0 checks everything on this thread. Not used with a
   * custom `sha256`.
   */
  workers?: number;
}

/** Streams (or files) below this size are verified on one thread: starting workers costs more. */
const WORKERS_FROM_EVENTS = 10_000;
const WORKERS_FROM_BYTES = 4 << 20;

function validateWorkers(workers: number | undefined): void {
  if (workers !== undefined && (!Number.isSafeInteger(workers) || workers < 0)) {
    throw new ChainlogInvalidArgumentError(`workers must be an integer >= 0, not ${workers}. Leave it out for the default.`, {
      code: 'CHAINLOG_INVALID_ARGUMENT',
    });
  }
}

/**
 * The worker threads used for a large input by default, at most 4: one fewer than the cores for a
 * file, two fewer when reading from the database. A database's COPY keeps a core busy when the server
 * runs on the same machine, and once the hashes became cheap (nodeSha256Matches) a worker sharing the
 * last core with it and the main thread slowed verifyOffline() down: on 2 cores, 0.76–0.95× of
 * `workers: 0` (docs/PERFORMANCE.md). For a server on another machine, pass `workers` yourself.
 */
export function defaultContentWorkers(source: 'file' | 'database'): number {
  return Math.max(0, Math.min(4, availableParallelism() - (source === 'database' ? 2 : 1)));
}

/** How many content-check workers to start; see VerifyOfflineOptions.workers. */
function workerCount(requested: number | undefined, customSha256: boolean, large: boolean, source: 'file' | 'database'): number {
  if (customSha256) return 0;
  if (requested !== undefined) return requested;
  return large ? defaultContentWorkers(source) : 0;
}

/**
 * Runs `scan` with a pool of `workers` content checkers, as a fast path for an intact chain. When the
 * pooled scan finds anything wrong (or cannot use workers) the result comes from `scan()` on this
 * thread alone, which names and classifies the first problem.
 */
async function withContentWorkers(
  workers: number,
  scan: (pool: ContentCheckPool | undefined, pass: 1 | 2) => Promise<Scanner>,
): Promise<Scanner> {
  if (workers === 0) return scan(undefined, 1);
  const pool = new ContentCheckPool(workers);
  let scanner: Scanner;
  let contentOk: boolean;
  try {
    scanner = await scan(pool, 1);
    contentOk = await pool.finish();
  } finally {
    await pool.close();
  }
  return contentOk && scanner.k === null ? scanner : scan(undefined, 2);
}

// Every value as its type's output function prints it (as COPY does), not parsed by the driver.
const RAW_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

function validateStream(stream: unknown): void {
  if (typeof stream !== 'string' || stream === '') {
    throw new ChainlogInvalidArgumentError('verify needs a stream name. SELECT stream FROM chainlog.streams lists them.', {
      code: 'CHAINLOG_INVALID_ARGUMENT',
    });
  }
}

function validateUpTo(upToSeq: number | undefined): void {
  if (upToSeq !== undefined && (!Number.isSafeInteger(upToSeq) || upToSeq < 0)) {
    throw new ChainlogInvalidArgumentError(`upToSeq must be an integer >= 0, not ${upToSeq}. Leave it out to verify the whole stream.`, {
      code: 'CHAINLOG_INVALID_ARGUMENT',
    });
  }
}

function unknownStream(stream: string): ChainlogUnknownStreamError {
  return new ChainlogUnknownStreamError(`there is no stream "${stream}". SELECT stream FROM chainlog.streams lists the streams.`, {
    code: 'LC005',
    stream,
  });
}

/**
 * Verifies `stream` in TypeScript from a COPY of its rows, in one REPEATABLE READ snapshot (when joined,
 * the caller's: see VerifyOfflineOptions.db for READ COMMITTED), without calling any chainlog function.
 * Reports what chainlog.verify() reports (problem and firstBadSeq agree).
 */
export async function verifyOffline(options: VerifyOfflineOptions): Promise<VerifyReport> {
  const { db, stream, upToSeq, onProgress } = options;
  validateStream(stream);
  validateUpTo(upToSeq);
  validateWorkers(options.workers);
  const checkpoint = options.checkpoint === undefined ? undefined : checkpointWithin(options.checkpoint, upToSeq);
  const sha256 = options.sha256 ?? nodeSha256;
  const limitSeq = upToSeq ?? Number.MAX_SAFE_INTEGER;

  return withPinnedSnapshot(db, async (client, session) => {
    try {
      return await verifyInSnapshot(client, session.snapshotPerStatement);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      const hint = `Check the stream in the database: SELECT * FROM chainlog.verify('${stream.replace(/'/g, "''")}').`;
      throw new ChainlogError(`verifyOffline could not read a row of stream "${stream}" from the database: ${e.message}. ${hint}`, {
        code: 'CHAINLOG_UNEXPECTED',
        cause: e,
        hint,
      });
    }
  });

  async function verifyInSnapshot(client: pg.ClientBase, snapshotPerStatement: boolean): Promise<VerifyReport> {
    const recorded = await readStreamHead(client, stream);
    const head = recorded ? { seq: recorded.seq, hash: parseBytea(recorded.hash), pending: recorded.pending } : null;
    const where = `e.stream = ${client.escapeLiteral(stream)}${upToSeq === undefined ? '' : ` and e.seq <= ${upToSeq}`}`;
    const sql = `copy (select ${EXPORT_COLUMNS.map((c) => `e.${c}`).join(', ')} from chainlog.events e where ${where} order by e.seq, e.id) to stdout (format binary)`;
    // A second scan, when the first used workers and found a problem, reads the same rows: one snapshot.
    const scan = async (pool: ContentCheckPool | undefined, pass: 1 | 2) => {
      const scanner = new Scanner({
        columns: EXPORT_COLUMNS, sha256, limitSeq, fromSeq: 1, collectNeighbours: false, binary: true, contentPool: pool, watchSeq: checkpoint?.seq,
      });
      const parser = new BinaryCopyParser(new RowBuffer(EXPORT_COLUMNS.length), scanner.row);
      let bytes = 0;
      await copyOut(client, sql, async (rows) => {
        for await (const chunk of rows as AsyncIterable<Buffer>) {
          parser.push(chunk);
          bytes += chunk.length;
          onProgress?.({ rows: scanner.rows, bytes, pass });
          if (pool) await pool.backpressure();
        }
      });
      parser.end();
      return scanner;
    };
    const workers = workerCount(options.workers, options.sha256 !== undefined, (recorded?.seq ?? 0) >= WORKERS_FROM_EVENTS, 'database');
    const scanner = await withContentWorkers(workers, scan);

    if (scanner.rows === 0 && head === null) {
      if (checkpoint) return { stream, ...removedStream(checkpoint) };
      throw unknownStream(stream);
    }
    const neighbourhood = databaseNeighbourhood(client, stream);
    let k = scanner.k;
    // The COPY stops at upToSeq. A gap that starts within it and ends beyond it is not the end of the
    // chain: events after it are stored, so the ones from lastSeq + 1 on are missing, not cut off (as
    // chainlog.verify() says, and as a file holding those later rows shows).
    if (k === null && head !== null && head.seq > scanner.lastSeq && limitSeq > scanner.lastSeq && (await neighbourhood.nextPresent(scanner.lastSeq)) !== null) {
      k = scanner.lastSeq + 1;
    }
    const verdict =
      head === null
        ? withoutHead(scanner.rows) // whatever the chain looks like, as verify() does
        : k === null
          ? compareWithHead(scanner.checked, scanner.lastSeq, scanner.checked ? scanner.lastHash : null, head, limitSeq)
          : await classify(k, head, neighbourhood, sha256);
    const report = { stream, ...(checkpoint ? applyCheckpoint(verdict, checkpoint, scanner.watchedHash, scanner.lastSeq) : verdict) };
    // Joined inside the caller's READ COMMITTED transaction, the head and the rows were read in snapshots
    // of their own: an append committed in between looks like events inserted beyond the head. A problem
    // found then stands only if the head has not moved since. (A chain found intact up to the head read
    // first is intact, whatever was appended after it.)
    if (snapshotPerStatement && !report.ok) {
      const now = await readStreamHead(client, stream);
      if (now?.seq !== recorded?.seq || now?.hash !== recorded?.hash) throw appendedWhileRead(stream, recorded, now);
    }
    return report;
  }
}

/** verifyOffline() in a READ COMMITTED transaction saw the stream's head move while it read the stream. */
function appendedWhileRead(stream: string, before: StreamHead | null, after: StreamHead | null): ChainlogError {
  const seq = (head: StreamHead | null) => (head === null ? 'none' : `seq ${head.seq}`);
  const hint = 'Run it again with a pool (db: pool), or in a REPEATABLE READ transaction, where the whole verification reads one snapshot.';
  return new ChainlogError(
    `stream "${stream}" was appended to while verifyOffline read it in a READ COMMITTED transaction (its recorded head went from ${seq(before)} to ${seq(after)}), ` +
      `so its rows and its head come from different snapshots and nothing can be concluded about its chain. ${hint}`,
    { code: 'CHAINLOG_CONCURRENT_APPEND', hint },
  );
}

/** The rows around a broken position, read with plain SELECTs in the same snapshot. */
function databaseNeighbourhood(client: pg.ClientBase, stream: string): Neighbourhood {
  const scalar = async (sql: string, values: unknown[]) => {
    const { rows } = await client.query<{ v: string | null }>(sql, [stream, ...values]);
    return rows[0]?.v == null ? null : Number(rows[0].v);
  };
  return {
    checkedBefore: async (k) => (await scalar('select count(*) as v from chainlog.events e where e.stream = $1 and e.seq < $2', [k]))!,
    rowsAt: async (seq) => {
      const { rows } = await client.query({
        text: `select ${EXPORT_COLUMNS.join(', ')} from chainlog.events e where e.stream = $1 and e.seq = $2 order by e.id`,
        values: [stream, seq],
        types: RAW_TEXT,
      });
      return rows.map((row) => eventTextFromColumns(row));
    },
    nextPresent: (k) => scalar('select min(e.seq) as v from chainlog.events e where e.stream = $1 and e.seq > $2', [k]),
    linkedSeq: (hash, k) =>
      scalar('select min(e.seq) as v from chainlog.events e where e.stream = $1 and e.hash = $2 and e.seq <> $3', [Buffer.from(hash), k]),
    successorSeq: (hash, k) =>
      scalar('select min(e.seq) as v from chainlog.events e where e.stream = $1 and e.seq > $3 and e.prev_hash = $2', [Buffer.from(hash), k + 1]),
    lastStoredSeq: () => scalar('select max(e.seq) as v from chainlog.events e where e.stream = $1', []),
  };
}

// ---------------------------------------------------------------------------------------------
// From an exported file.

export interface VerifyFileOptions {
  /** The exported file. */
  path?: string;
  /** Or its bytes, as a stream. */
  input?: Readable | AsyncIterable<Uint8Array>;
  /** Default: from the file name (.ndjson, .jsonl or .json), else csv. */
  format?: 'csv' | 'ndjson';
  /**
   * Verify only this stream's rows. Needed for a file holding rows of several streams, which is refused
   * without it; default: the one stream of the file. Rows of other streams are still read and checked
   * for their form (a malformed one is refused), and counted in the report's `skipped`, but not
   * verified; a stream named like this one in another Unicode form is refused.
   */
  stream?: string;
  /**
   * The head the chain must end at (exportEvents() returns it as headSeq/headHash; chainlog.streams shows
   * it). Without it the end of the file is taken as the end of the chain: a file cut short still verifies.
   * Refused beyond upToSeq, where it could not be checked.
   */
  expectedHead?: { seq: number | string | bigint; hash: string | Uint8Array };
  /** Verify only up to this seq. */
  upToSeq?: number;
  /**
   * The seq the file starts at, for an export made with fromSeq; the first row's prev_hash is then
   * trusted. Default 1. Above 1, a file whose first row is at another seq is refused.
   */
  fromSeq?: number;
  /**
   * A head recorded outside the database, at or before the time of the export (src/checkpoint.ts):
   * the file must hold that event with that hash. Unlike expectedHead, the file may go on past it.
   */
  checkpoint?: CheckpointArg;
  /**
   * Heads by stream, as openSignedCheckpoint() returns them: the file's stream is checked against its
   * own, as with `checkpoint`. A file whose stream has none there is refused.
   */
  checkpoints?: ReadonlyMap<string, Checkpoint>;
  onProgress?: (progress: VerifyProgress) => void;
  sha256?: Sha256;
  /**
   * Worker threads that recompute the hashes, as for verifyOffline(). Default: one fewer than the
   * machine's cores (at most 4) for a file of 4 MB or more given by `path`. Not used with `input` (a
   * stream cannot be read twice, which naming a problem may need) or with a custom `sha256`.
   */
  workers?: number;
}

/**
 * Verifies an export (exportEvents(), CSV or NDJSON) with no database at all. Reports like
 * chainlog.verify(); compares the chain's end with `expectedHead` only when it is given.
 * Keeps 32 bytes per event in memory (the hashes classification may need to look up).
 *
 * The file must be as the export writes it: whatever in it the hashes do not cover (CSV header, JSON
 * keys and syntax, ids, the order of the lines) is checked too, and a file that is not so is refused
 * with a ChainlogFileFormatError naming the line, and when known the seq and the field.
 */
export async function verifyOfflineFile(options: VerifyFileOptions): Promise<VerifyReport> {
  const { path, input, expectedHead, upToSeq, onProgress } = options;
  if ((path === undefined) === (input === undefined)) {
    throw new ChainlogInvalidArgumentError('verifyOfflineFile needs exactly one of path and input.', { code: 'CHAINLOG_INVALID_ARGUMENT' });
  }
  if (options.stream !== undefined) validateStream(options.stream);
  validateUpTo(upToSeq);
  const fromSeq = options.fromSeq ?? 1;
  if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) {
    throw new ChainlogInvalidArgumentError(`fromSeq must be an integer >= 1, not ${fromSeq}.`, { code: 'CHAINLOG_INVALID_ARGUMENT' });
  }
  if (upToSeq !== undefined && upToSeq < fromSeq) {
    throw invalidArgument(`upToSeq (${upToSeq}) lies before fromSeq (${fromSeq}), where the file starts: there is nothing to verify.`, 'Leave upToSeq out, or give one at or after fromSeq.');
  }
  const head = expectedHead === undefined ? null : expectedHeadOf(expectedHead, upToSeq);
  const format = options.format ?? (path && /\.(nd)?jsonl?$|\.ndjson$/i.test(path) ? 'ndjson' : 'csv');
  validateWorkers(options.workers);
  if (options.checkpoint !== undefined && options.checkpoints !== undefined) {
    throw new ChainlogInvalidArgumentError('verifyOfflineFile takes checkpoint or checkpoints, not both.', { code: 'CHAINLOG_INVALID_ARGUMENT' });
  }
  // The checkpoint of the file's stream, once that is known: given, or from the first row.
  let checkpoint = options.checkpoint === undefined ? undefined : fileCheckpoint(options.checkpoint, upToSeq, fromSeq);
  const checkpointOf = (streamName: string): Checkpoint | undefined => {
    if (options.checkpoints === undefined) return checkpoint;
    const found = options.checkpoints.get(streamName);
    if (found === undefined) {
      throw new ChainlogInvalidArgumentError(
        `The checkpoints hold no head of stream ${quotedName(streamName)}, the stream of the file: it cannot be checked against them.`,
        { code: 'CHAINLOG_INVALID_ARGUMENT', hint: 'Use checkpoints taken of the database the file was exported from, or verify the file without them.' },
      );
    }
    return (checkpoint = fileCheckpoint(found, upToSeq, fromSeq));
  };
  const sha256 = options.sha256 ?? nodeSha256;
  const limitSeq = upToSeq ?? Number.MAX_SAFE_INTEGER;

  // The stream verified: the one asked for, else the first row's. Rows are told apart by their bytes.
  const given = options.stream;
  let wanted: Uint8Array | null = given === undefined ? null : utf8Encoder.encode(given);
  let wantedName = given;
  let scanner: Scanner | undefined;
  let parser: Parser | undefined;
  const makeScanner = (columns: readonly string[], pool?: ContentCheckPool) =>
    new Scanner({
      columns, sha256, limitSeq, fromSeq, collectNeighbours: true, contentPool: pool, line: () => parser!.line(),
      form: format === 'csv' ? CSV_FORM : JSON_FORM,
      startsAtFromSeq: fromSeq > 1,
      // The stream is known here when it was given, or on a second pass (the first one read it).
      watchSeq: wantedName === undefined ? undefined : checkpointOf(wantedName)?.seq,
    });
  // Every row is read in full whatever its stream (a row too short to have one is refused before its
  // stream is looked at). Rows of another stream are refused, unless a stream was asked for: then they
  // are checked as rows of the file (Scanner.skipOther()), counted and reported, but not verified; a
  // name that only looks like the one asked for is refused.
  const streamFilter = (columns: readonly string[], s: Scanner): RowSink => {
    const col = columns.indexOf('stream');
    // Other streams' names already met, as bytes, so that a row of one is not decoded again.
    const known: Uint8Array[] = [];
    const wantedLooks = given?.normalize('NFKC');
    return (r) => {
      checkWidth(r);
      const b = r.bytes;
      const start = r.start[col]!;
      const end = r.end[col]!;
      if (wanted === null) {
        wantedName = decodeText(b, start, end, 'stream');
        wanted = b.slice(start, end);
        s.watchSeq = checkpointOf(wantedName)?.seq;
      } else if (!sameBytes(b, start, end, wanted)) {
        s.skipOther(r);
        for (let k = 0; k < known.length; k++) if (sameBytes(b, start, end, known[k]!)) return r;
        const other = decodeText(b, start, end, 'stream');
        if (given === undefined) {
          throw bad(
            `the file holds events of more than one stream (${quotedName(wantedName!)} and ${quotedName(other)})`,
            { field: 'stream', named: true, hint: 'Name the stream to verify: the stream option of verifyOfflineFile(), or chainlog verify --file FILE --stream NAME.' },
          );
        }
        if (other.normalize('NFKC') === wantedLooks) {
          throw bad(
            `the file holds events of stream ${quotedName(other)}, another name that reads like ${quotedName(given)} (the same text in another Unicode form): an export holds one stream, and a reader could not tell these apart`,
            { field: 'stream', named: true, hint: 'Verify the file as exported: chainlog export writes the events of one stream.' },
          );
        }
        if (known.length < 64) known.push(b.slice(start, end));
        if (s.skippedStreams.length < SKIPPED_NAMES && !s.skippedStreams.includes(other)) s.skippedStreams.push(other);
        return r;
      }
      return s.row(r);
    };
  };

  const scan = async (pool: ContentCheckPool | undefined, pass: 1 | 2): Promise<Scanner> => {
    scanner = undefined;
    if (format === 'ndjson') {
      const s = (scanner = makeScanner(EXPORT_COLUMNS, pool));
      parser = new NdjsonParser(s.ring[0]!, streamFilter(EXPORT_COLUMNS, s), EXPORT_COLUMNS);
    } else {
      // The header line names the columns: exactly the export's, each once, in any order. The data rows
      // follow on the same parser, fed to the scanner.
      const csv = new CsvParser(new RowBuffer(EXPORT_COLUMNS.length * 2), (r) => sink(r));
      let sink: RowSink = (h) => {
        const columns = headerColumns(h);
        csv.names = columns;
        const s = (scanner = makeScanner(columns, pool));
        sink = streamFilter(columns, s);
        return s.ring[0]!;
      };
      parser = csv;
    }
    const source = readInput(input ?? createReadStream(path!, { highWaterMark: 1 << 20 }), path);
    let bytes = 0;
    // The first bytes are held until there are three, to tell a byte order mark.
    let first: Uint8Array | null = new Uint8Array(0);
    firstByte = -1;
    for await (const chunk of source) {
      bytes += chunk.length;
      let data = chunk;
      if (first !== null) {
        data = concat(first, chunk);
        if (data.length < 3) {
          first = data;
          continue;
        }
        refuseBom(data);
        firstByte = data[0]!;
        first = null;
      }
      parser.push(data);
      onProgress?.({ rows: scanner?.rows ?? 0, bytes, pass });
      if (pool) await pool.backpressure();
    }
    if (first !== null && first.length > 0) parser.push(first);
    parser.end();
    return scanner ?? makeScanner(EXPORT_COLUMNS);
  };

  // The file's first byte, to tell an export of the other format read as this one (wrongFormat()).
  let firstByte = -1;
  // A file that cannot be read is the caller's argument, not a malformed file.
  const file = path === undefined ? { size: 0, rereadable: false } : await fileToVerify(path);
  try {
    // The file's size decides only the default. With workers, a problem found means a second pass, so
    // only a regular file gets them: a stream passed as input, a pipe or a device (/dev/stdin) is read once.
    const custom = options.sha256 !== undefined;
    const large = options.workers === undefined && !custom && file.size >= WORKERS_FROM_BYTES;
    const workers = workerCount(options.workers, custom, large, 'file');
    const s = await withContentWorkers(file.rereadable ? workers : 0, scan);

    const stream = wantedName ?? '';
    const skipped = s.skippedRows > 0 ? { skipped: { rows: s.skippedRows, streams: s.skippedStreams } } : {};
    if (s.rows === 0 && !expectedHead && !checkpoint && s.disorder === null) {
      throw bad(
        given === undefined
          ? 'the file holds no events'
          : `the file holds no events of stream ${quotedName(given)}${s.skippedRows === 0 ? '' : ` (it holds events of ${s.skippedStreams.map(quotedName).join(', ')})`}`,
        { hint: 'Check the file and the stream name.' },
      );
    }
    if (s.disorder !== null) return { stream, ...disorderVerdict(s.disorder), ...skipped };
    const verdict =
      s.k === null
        ? compareWithHead(s.checked, s.lastSeq, s.checked ? s.lastHash : null, head, limitSeq)
        : await classify(s.k, head, s, sha256);
    return { stream, ...(checkpoint ? applyCheckpoint(verdict, checkpoint, s.watchedHash, s.lastSeq, { file: true, fromSeq }) : verdict), ...skipped };
  } catch (e) {
    throw fileFormatError(wrongFormat(e, format, firstByte));
  }
}

/**
 * The input's chunks. An error reading them (an I/O error, an input stream that failed) is the input's,
 * not a malformed file's: a ChainlogError naming it, with the system error's code (EIO, ...) or
 * CHAINLOG_INPUT. Only the input's own errors pass through here: one thrown while a chunk is checked
 * ends the loop that reads it instead.
 */
async function* readInput(input: Readable | AsyncIterable<Uint8Array>, path: string | undefined): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of input as AsyncIterable<Uint8Array>) yield chunk;
  } catch (e) {
    if (e instanceof ChainlogError) throw e;
    const { code, message } = (typeof e === 'object' && e !== null ? e : { message: String(e) }) as { code?: unknown; message?: unknown };
    const hint = path === undefined ? 'The input stream failed; nothing was concluded about the events.' : 'Check the file and the disk it is on; nothing was concluded about the events.';
    throw new ChainlogError(`could not read ${path === undefined ? 'the input stream' : `the file ${JSON.stringify(path)}`}: ${String(message)}. ${hint}`, {
      code: typeof code === 'string' ? code : 'CHAINLOG_INPUT',
      cause: e,
      hint,
    });
  }
}

/**
 * An error on the first line of a file that starts as the other format's export does ("{" for NDJSON,
 * "id," or another column for CSV) gets the hint to read it as that format.
 */
function wrongFormat(e: unknown, format: 'csv' | 'ndjson', firstByte: number): unknown {
  const err = locate(e, {});
  if (!(err instanceof FormatError) || (err as LocatedError).line !== 1) return err;
  const other = format === 'csv' ? (firstByte === 123 ? 'ndjson' : null) : firstByte >= 97 && firstByte <= 122 ? 'csv' : null;
  if (other !== null) {
    (err as LocatedError).hint = `The file looks like ${other === 'csv' ? 'CSV' : 'NDJSON'}: verify it as that (the format option of verifyOfflineFile(), or chainlog verify --file FILE --format ${other}).`;
  }
  return err;
}

/** How many other streams' names a report lists (VerifyReport.skipped). */
export const SKIPPED_NAMES = 10;

/**
 * The file to verify: its size, and whether it can be read twice (a regular file, not a pipe or a
 * device). A path that does not exist or is a directory is a bad argument.
 */
async function fileToVerify(path: string): Promise<{ size: number; rereadable: boolean }> {
  const hint = 'Give the path of the file chainlog export wrote.';
  let info;
  try {
    info = await stat(path);
    if (!info.isDirectory()) await access(path, fsConstants.R_OK);
  } catch (e) {
    const what = (e as { code?: string }).code === 'ENOENT'
      ? `There is no file ${JSON.stringify(path)} to verify.`
      : `Cannot read the file ${JSON.stringify(path)}: ${(e as Error).message}.`;
    throw new ChainlogInvalidArgumentError(`${what} ${hint}`, { code: 'CHAINLOG_INVALID_ARGUMENT', cause: e, hint });
  }
  // A pipe or a device (/dev/stdin) is read as it streams; a directory cannot be.
  if (info.isDirectory()) throw invalidArgument(`${JSON.stringify(path)} is a directory, not an exported file.`, hint);
  return { size: info.size, rereadable: info.isFile() };
}

/**
 * The head a file must end at, checked: a seq of 0 or more and a 32-byte hash (64 hex digits). One
 * beyond upToSeq could not be checked (the verifier stops at upToSeq), so it is refused, as a
 * checkpoint beyond upToSeq is.
 */
function expectedHeadOf(given: { seq: number | string | bigint; hash: string | Uint8Array }, upToSeq: number | undefined): Head {
  // A number, or the decimal string (or bigint) that chainlog.export() returns as headSeq.
  const seq = decimalSeq(given?.seq);
  const hash = given?.hash;
  const hashOk = typeof hash === 'string' ? /^(\\x)?[0-9a-fA-F]{64}$/.test(hash) : hash instanceof Uint8Array && hash.length === 32;
  if (!Number.isSafeInteger(seq) || seq < 0 || !hashOk) {
    throw invalidArgument(
      'expectedHead must be { seq, hash }: a seq of 0 or more and the 32-byte hash of that event (64 hex digits).',
      'chainlog export prints it, as SEQ:HASH (--expected-head); exportEvents() returns headSeq and headHash.',
    );
  }
  if (upToSeq !== undefined && upToSeq < seq) {
    throw invalidArgument(
      `The expected head (seq ${seq}) lies beyond upToSeq (${upToSeq}): it cannot be checked.`,
      'Leave upToSeq out, or verify up to the expected head at least.',
    );
  }
  return { seq, hash: typeof hash === 'string' ? parseBytea(hash) : hash };
}

/** A checkpoint a file can be checked against: within upToSeq, and not before the seq the file starts at. */
function fileCheckpoint(given: CheckpointArg, upToSeq: number | undefined, fromSeq: number): Checkpoint {
  const checkpoint = checkpointWithin(given, upToSeq);
  if (checkpoint.seq < fromSeq) {
    throw new ChainlogInvalidArgumentError(
      `The checkpoint (seq ${checkpoint.seq}) lies before the file's first event (seq ${fromSeq}): the file cannot show it.`,
      { code: 'CHAINLOG_INVALID_ARGUMENT', hint: 'Export the stream from seq 1 (or from the checkpoint at most) to check it against this checkpoint.' },
    );
  }
  return checkpoint;
}

/** The CSV header's column names: exactly EXPORT_COLUMNS, each once (in any order). */
function headerColumns(h: RowBuffer): string[] {
  const columns: string[] = [];
  for (let i = 0; i < h.fields; i++) {
    const name = decodeText(h.bytes, h.start[i]!, h.end[i]!, `column ${i + 1} of the header`);
    if (!(EXPORT_COLUMNS as readonly string[]).includes(name)) {
      throw bad(`unknown column ${JSON.stringify(name)} in the header: an export has exactly the columns ${EXPORT_COLUMNS.join(', ')}`, {
        field: name,
        named: true,
      });
    }
    if (columns.includes(name)) {
      throw bad(`the column "${name}" appears twice in the header (CSV readers differ on which one counts)`, { field: name, named: true });
    }
    columns.push(name);
  }
  const missing = EXPORT_COLUMNS.filter((c) => !columns.includes(c));
  if (missing.length > 0) {
    throw bad(`the header lacks the column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: an export has exactly the columns ${EXPORT_COLUMNS.join(', ')}`, {
      field: missing[0],
      named: true,
    });
  }
  return columns;
}

function refuseBom(data: Uint8Array): void {
  if (data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) {
    throw bad('the file starts with a UTF-8 byte order mark (the bytes EF BB BF), which an export never writes: a program saved the file again', {
      line: 1,
      hint: 'Verify the file as exported. If only the mark was added, remove those three bytes and verify again: the hashes cover everything else.',
    });
  }
}

function sameBytes(b: Uint8Array, start: number, end: number, to: Uint8Array): boolean {
  if (end - start !== to.length) return false;
  for (let i = 0; i < to.length; i++) if (b[start + i] !== to[i]) return false;
  return true;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Lines out of order: the verdict names them, whatever else the rows before them showed. */
function disorderVerdict(d: Disorder): Verdict {
  return {
    ok: false,
    checked: d.checked,
    firstBadSeq: d.seq,
    problem: d.repeat ? 'inserted' : 'reordered',
    detail: d.repeat
      ? `line ${d.line} repeats event ${d.seq}: the file holds it twice`
      : d.seq === d.after
        ? `line ${d.line} holds an event at seq ${d.seq} with a smaller id than the line before it: the file's lines are out of (seq, id) order, in which an export writes them`
        : `line ${d.line} holds event ${d.seq} after event ${d.after}: the file's lines are out of seq order, in which an export writes them`,
  };
}
