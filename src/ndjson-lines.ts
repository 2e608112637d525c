// Builds NDJSON export lines in Node from a binary COPY TO STDOUT of the exported columns.
//
// Why here and not in SQL: building each line in PostgreSQL (to_json() per column, concatenated) made
// the server, the export's bottleneck, do about twice the work of a plain COPY. Here the server only
// streams the columns, and this process builds the JSON on another core, in parallel.
//
// Why binary COPY: every field arrives length-prefixed, so nothing is unescaped and finding a field
// costs two reads, not a scan.
//
// Everything is handled as bytes. A chunk is read as one latin1 string (one character per byte), fields
// are sliced out of it, and the lines are written back as latin1: the UTF-8 bytes PostgreSQL sent come
// out unchanged, and no multibyte character can be cut in two, since a field is only taken once all of
// its bytes have arrived. A row split across chunks is kept until the rest of it arrives.
import { Transform, type TransformCallback } from 'node:stream';

/**
 * How a column arrives in the binary COPY, and how it goes into the line:
 * - int: int2/int4/int8, written as a JSON number;
 * - text: text, written as a JSON string escaped exactly as PostgreSQL's to_json(text) escapes it;
 * - json: json (its binary form is its text), spliced in as is;
 * - jsonb: jsonb (a version byte, then the text jsonb_out prints), spliced in as is;
 * - hex: bytea, written as a JSON string of lowercase hex.
 */
export type FieldKind = 'int' | 'text' | 'json' | 'jsonb' | 'hex';

export interface NdjsonField {
  name: string;
  kind: FieldKind;
}

export interface LinesProgress {
  rows: number;
  bytes: number;
}

// 'PGCOPY\n\xff\r\n\0', then 32-bit flags and the 32-bit length of a header extension.
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const HEADER_LENGTH = SIGNATURE.length + 8;

/** A malformed binary COPY: a bug or a protocol change, never something bad data can cause. */
export class CopyFormatError extends Error {
  override name = 'CopyFormatError';
}

const int16 = (b: Buffer, i: number) => ((b[i]! << 24) | (b[i + 1]! << 16)) >> 16;
const int32 = (b: Buffer, i: number) => (b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!;

/** A binary integer field (2, 4 or 8 bytes, big-endian) as decimal text. */
function intText(buf: Buffer, at: number, length: number): string {
  if (length === 2) return String(int16(buf, at));
  if (length === 4) return String(int32(buf, at));
  if (length === 8) {
    const high = int32(buf, at);
    // Exact as a double while |value| <= 2^53, i.e. for every id and seq a table will ever hold.
    if (high >= -0x200000 && high < 0x200000) return String(high * 0x100000000 + (int32(buf, at + 4) >>> 0));
    return buf.readBigInt64BE(at).toString();
  }
  throw new CopyFormatError(`an integer field of ${length} bytes`);
}

/**
 * A text field (its bytes as latin1 characters) as a JSON string, byte for byte what to_json(text)
 * prints. PostgreSQL escapes byte by byte: ", \ and bytes below 0x20 (\b \f \n \r \t, else \u00xx in
 * lowercase), every other byte as is. JSON.stringify of a latin1 string escapes exactly those characters
 * the same way: it leaves 0x7f and 0x80–0xff alone, and the only other thing it escapes, a lone
 * surrogate, cannot occur in a string of one-byte characters. Most values need no escape at all.
 */
function jsonString(buf: Buffer, text: string, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b < 0x20 || b === 0x22 || b === 0x5c) return JSON.stringify(text.slice(start, end));
  }
  return `"${text.slice(start, end)}"`;
}

/**
 * Reads a binary COPY of `fields` (in that order) and writes one JSON object per row and line: keys in
 * field order, a SQL NULL field left out. Counts rows and bytes written, and reports them per chunk.
 */
export class NdjsonLines extends Transform {
  rows = 0;
  bytes = 0;
  private readonly keys: string[];
  private readonly kinds: FieldKind[];
  /** Bytes received and not yet made into lines: the start of a row, or of the header. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** How many held bytes the next step needs at least; a smaller total is not worth parsing. */
  private need = 0;
  private headerRead = false;
  private trailerRead = false;
  /** Where the row just parsed ends (set by row()). */
  private next = 0;

  constructor(
    fields: readonly NdjsonField[],
    private readonly onProgress?: (progress: LinesProgress) => void,
  ) {
    super();
    this.keys = fields.map((f) => `${JSON.stringify(f.name)}:`);
    this.kinds = fields.map((f) => f.kind);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes < this.need) return done();
    // One copy only when a row spans chunks; `need` keeps a long row from being copied per chunk.
    const buf = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held, this.heldBytes);
    try {
      const used = this.parse(buf);
      const rest = buf.subarray(used);
      this.held = rest.length > 0 ? [rest] : [];
      this.heldBytes = rest.length;
    } catch (e) {
      return done(e as Error);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (!this.trailerRead || this.heldBytes > 0) return done(new CopyFormatError('the COPY data ended in the middle of a row'));
    done();
  }

  /** Makes lines of the complete rows in `buf` and pushes them; returns how many bytes it used. */
  private parse(buf: Buffer): number {
    let at = 0;
    if (!this.headerRead) {
      at = this.header(buf);
      if (at === 0) return 0;
    }
    const text = buf.toString('latin1');
    let out = '';
    let rows = 0;
    while (!this.trailerRead) {
      const line = this.row(buf, text, at);
      if (line === undefined) break;
      at = this.next;
      if (line === null) continue;
      out += line;
      rows++;
    }
    if (this.trailerRead && at !== buf.length) throw new CopyFormatError('data after the end of the COPY');
    if (rows > 0) this.emitLines(out, rows);
    return at;
  }

  /** Checks the file header; returns where the rows start, or 0 while it is incomplete. */
  private header(buf: Buffer): number {
    if (buf.length < HEADER_LENGTH) {
      this.wait(HEADER_LENGTH);
      return 0;
    }
    if (!buf.subarray(0, SIGNATURE.length).equals(SIGNATURE)) throw new CopyFormatError('not a binary COPY');
    // Bit 16 says each row carries an OID; nothing else is defined as critical.
    if ((int32(buf, SIGNATURE.length) & 0xffff0000) !== 0) throw new CopyFormatError('unexpected binary COPY flags');
    const start = HEADER_LENGTH + int32(buf, SIGNATURE.length + 4);
    if (buf.length < start) {
      this.wait(start);
      return 0;
    }
    this.headerRead = true;
    return start;
  }

  /**
   * The line of the row starting at `start` (next = where it ends); null for the trailer; undefined
   * when the row has not fully arrived (need = the bytes it needs at least, counted from its start).
   */
  private row(buf: Buffer, text: string, start: number): string | null | undefined {
    const end = buf.length;
    if (start + 2 > end) return this.wait(2);
    const count = int16(buf, start);
    if (count === -1) {
      this.trailerRead = true;
      this.next = start + 2;
      return null;
    }
    if (count !== this.kinds.length) throw new CopyFormatError(`a row of ${count} fields, expected ${this.kinds.length}`);
    let at = start + 2;
    let line = '';
    for (let i = 0; i < count; i++) {
      if (at + 4 > end) return this.wait(at + 4 - start);
      const length = int32(buf, at);
      at += 4;
      if (length === -1) continue;
      if (at + length > end) return this.wait(at + length - start);
      line += `${line === '' ? '{' : ','}${this.keys[i]}${this.value(this.kinds[i]!, buf, text, at, at + length)}`;
      at += length;
    }
    this.next = at;
    return `${line}}\n`;
  }

  private value(kind: FieldKind, buf: Buffer, text: string, start: number, end: number): string {
    switch (kind) {
      case 'int':
        return intText(buf, start, end - start);
      case 'text':
        return jsonString(buf, text, start, end);
      case 'json':
        return text.slice(start, end);
      case 'jsonb':
        if (buf[start] !== 1) throw new CopyFormatError(`jsonb binary format version ${buf[start]}`);
        return text.slice(start + 1, end);
      case 'hex':
        return `"${buf.toString('hex', start, end)}"`;
    }
  }

  /** Notes that the next step needs `bytes` held bytes; returns undefined: "not yet". */
  private wait(bytes: number): undefined {
    this.need = bytes;
    return undefined;
  }

  private emitLines(out: string, rows: number): void {
    const chunk = Buffer.from(out, 'latin1');
    this.rows += rows;
    this.bytes += chunk.length;
    this.push(chunk);
    this.onProgress?.({ rows: this.rows, bytes: this.bytes });
  }
}
