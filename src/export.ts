// Exports a stream's events, hashes included, as CSV or NDJSON, so they can be archived and verified
// offline (src/offline-verify.ts) without trusting the database they came from.
//
// The rows leave PostgreSQL by COPY TO STDOUT. CSV is piped straight to the output; for NDJSON the
// columns come in binary and the lines are built in Node (src/ndjson-lines.ts). The session settings that
// change how values print are pinned, so the same events export to the same bytes whatever the caller's
// session looks like, and the whole export reads one snapshot (bounded by the head read first, so also
// inside a caller's READ COMMITTED transaction, where each statement has its own).
import { constants as fsConstants, type Stats } from 'node:fs';
import { lstat, open, unlink } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { PassThrough, Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import {
  ChainlogConnectionError,
  ChainlogError,
  ChainlogInvalidArgumentError,
  ChainlogUnknownStreamError,
  toChainlogError,
} from './errors.js';
import { toHex } from './format.js';
import { NdjsonLines, type NdjsonField } from './ndjson-lines.js';

/** Settings that change how values print (and so the bytes of an export, and what offline verify parses). */
export const PINNED_SETTINGS: Readonly<Record<string, string>> = {
  TimeZone: 'UTC',
  DateStyle: 'ISO, MDY',
  IntervalStyle: 'postgres',
  bytea_output: 'hex',
  extra_float_digits: '1',
  client_encoding: 'UTF8',
  standard_conforming_strings: 'on',
  // Everything below is schema-qualified; an empty path means only pg_catalog can resolve a name.
  search_path: '',
};

/** The columns of an export, in chainlog.events' order: everything needed to recompute every hash. */
export const EXPORT_COLUMNS = [
  'id', 'stream', 'seq', 'recorded_at', 'occurred_at', 'actor', 'actor_type', 'event_type', 'action', 'result',
  'resource_type', 'resource_id', 'source_ip', 'request_id', 'payload', 'before', 'after', 'format_version',
  'data_digest', 'prev_hash', 'hash',
] as const;

type ExportColumn = (typeof EXPORT_COLUMNS)[number];

// SET LOCAL: undone when the transaction (or the savepoint) is rolled back.
const SET_PINNED = Object.entries(PINNED_SETTINGS)
  .map(([name, value]) => `set local ${name} = '${value}'`)
  .join('; ');

export type Db = pg.Pool | pg.ClientBase;

function isPool(db: Db): db is pg.Pool {
  return typeof (db as pg.Pool).totalCount === 'number';
}

/**
 * Watches one client for the 'error' event node-postgres emits when its connection drops (a server
 * restart, pg_terminate_backend, a network failure). A client checked out of a pool has no listener of
 * its own, and an 'error' event nobody listens to ends the process: while the watch is on, the event is
 * recorded instead, and the call that was using the client rejects with a ChainlogConnectionError.
 * node-postgres fails the query in flight (a COPY too) and every later one on such a client, so the call
 * always settles; it does not have to be raced against the event.
 */
class ConnectionWatch {
  /** The error the client emitted, if its connection dropped while watched. */
  lost: unknown = undefined;
  private readonly onError = (e: unknown) => {
    this.lost ??= e;
  };

  constructor(private readonly client: pg.ClientBase) {
    client.on('error', this.onError);
  }

  /**
   * What a call that failed with `e` should throw: `e` itself, unless the connection dropped under it;
   * then a ChainlogConnectionError (e mapped, when it already says so, e.g. 57P01; else the drop).
   */
  failure(e: unknown): unknown {
    if (this.lost === undefined) return e;
    const mapped = toChainlogError(e);
    return mapped instanceof ChainlogConnectionError ? mapped : toChainlogError(this.lost);
  }

  /** True when the session cannot be used again: the connection dropped, or the call failed because it did. */
  broken(failure?: unknown): boolean {
    return this.lost !== undefined || (failure !== undefined && toChainlogError(failure) instanceof ChainlogConnectionError);
  }

  /**
   * Stops watching. On a dead connection the listener stays: its 'error' event can still arrive after
   * the failed query (the server's FATAL message comes before the socket closes), and it must not end
   * the process once the call has already reported the loss.
   */
  stop(dead: boolean): void {
    if (!dead) this.client.removeListener('error', this.onError);
  }
}

/** The argument of PoolClient.release() for a session that must not go back to the pool. */
function brokenSessionError(cause: unknown): Error {
  return new Error('chainlog: session left in an unknown state', cause === undefined ? undefined : { cause });
}

/**
 * Runs fn on one session: a client checked out of the pool, or the client itself. The client is watched
 * for a dropped connection the whole time (ConnectionWatch): fn then rejects with a
 * ChainlogConnectionError instead of the process dying of an unhandled 'error' event, and a pooled
 * client is released as broken. fn calls `unusable()` when it left the session in a state the pool must
 * not lend again (a COPY or a ROLLBACK that failed halfway).
 */
export async function onWatchedSession<T>(db: Db, fn: (client: pg.ClientBase, unusable: () => void) => Promise<T>): Promise<T> {
  const pooled = isPool(db);
  let client: pg.ClientBase;
  try {
    client = pooled ? await db.connect() : db;
  } catch (e) {
    throw toChainlogError(e);
  }
  const watch = new ConnectionWatch(client);
  let failure: unknown;
  let reusable = true;
  try {
    return await fn(client, () => {
      reusable = false;
    });
  } catch (e) {
    failure = watch.failure(e);
    throw failure;
  } finally {
    const broken = watch.broken(failure) || !reusable;
    watch.stop(broken && !pooled);
    if (pooled) (client as pg.PoolClient).release(broken ? brokenSessionError(watch.lost ?? failure) : undefined);
  }
}

export interface PinnedSession {
  /**
   * True when every statement takes a snapshot of its own: a client joined inside a READ COMMITTED
   * transaction. Reads that must agree with each other (a head, then the rows up to it) cannot count on
   * one snapshot then, and must check that nothing was committed between them.
   */
  snapshotPerStatement: boolean;
}

/**
 * Runs `fn` on one connection inside one REPEATABLE READ READ ONLY snapshot with PINNED_SETTINGS, and
 * leaves the connection as it found it. A pool lends a connection for the call. A client already inside
 * a transaction is joined through a savepoint: the snapshot is then the caller's, one for the whole call
 * only if that transaction is REPEATABLE READ or SERIALIZABLE (`session.snapshotPerStatement` says when
 * it is not); the settings are undone. A connection lost on the way is a ChainlogConnectionError
 * (onWatchedSession).
 */
export function withPinnedSnapshot<T>(db: Db, fn: (client: pg.ClientBase, session: PinnedSession) => Promise<T>): Promise<T> {
  return onWatchedSession(db, async (client, unusable) => {
    const status = (client as { getTransactionStatus?: () => string | null }).getTransactionStatus?.();
    if (status === 'E') {
      throw new ChainlogInvalidArgumentError('the transaction open on this client has failed. Run ROLLBACK on it first, or pass a pool.', {
        code: 'CHAINLOG_INVALID_ARGUMENT',
      });
    }
    const joined = status === 'T';
    // Read-only work: rolling back loses nothing and undoes the settings.
    const undo = joined ? 'rollback to savepoint chainlog_snapshot; release savepoint chainlog_snapshot' : 'rollback';
    await client.query(joined ? 'savepoint chainlog_snapshot' : 'begin isolation level repeatable read read only');
    let result: T;
    try {
      await client.query(SET_PINNED);
      // READ UNCOMMITTED behaves as READ COMMITTED in PostgreSQL: a snapshot per statement too.
      const isolation = joined ? (await client.query<{ transaction_isolation: string }>('show transaction_isolation')).rows[0]!.transaction_isolation : null;
      const snapshotPerStatement = isolation !== null && isolation !== 'repeatable read' && isolation !== 'serializable';
      result = await fn(client, { snapshotPerStatement });
    } catch (e) {
      // Keep fn's error: a ROLLBACK that fails too (the connection is gone) only marks the session broken.
      await client.query(undo).catch(unusable);
      throw e;
    }
    await client.query(undo).catch((e: unknown) => {
      unusable();
      throw e;
    });
    return result;
  });
}

// How long an abandoned COPY may take to stop (cancelled, the rest of its output read and dropped)
// before its connection is closed instead: a server that ignores the cancel must not hold the call.
const STOP_COPY_WITHIN_MS = 5_000;

/** What node-postgres keeps on a connected client that a cancel request needs (not in its types). */
interface CancelTarget {
  processID?: unknown;
  secretKey?: unknown;
  host?: string;
  port?: number;
}

/**
 * Asks the server to cancel the statement `client`'s session is running: PostgreSQL's CancelRequest,
 * sent over a connection of its own (no login needed, so it works for a client the caller passed, with
 * no pool to borrow from). Resolves once the server has closed that connection, by which time it has
 * signalled the session; never rejects. A cancel that arrives after the statement ended is ignored by
 * the server as long as no next statement has been sent, which is why callers wait for this.
 */
function requestCancel(client: pg.ClientBase): Promise<void> {
  const { processID, secretKey, host, port } = client as unknown as CancelTarget;
  if (typeof processID !== 'number' || typeof secretKey !== 'number' || typeof port !== 'number') return Promise.resolve();
  return new Promise((resolve) => {
    const socket = host?.startsWith('/') ? netConnect(`${host}/.s.PGSQL.${port}`) : netConnect(port, host);
    const request = Buffer.alloc(16);
    request.writeInt32BE(16, 0);
    request.writeInt32BE(80877102, 4); // the CancelRequest code
    request.writeInt32BE(processID, 8);
    request.writeInt32BE(secretKey, 12);
    socket.once('connect', () => socket.end(request));
    socket.setTimeout(STOP_COPY_WITHIN_MS, () => socket.destroy());
    socket.on('error', () => {}); // unreachable: the COPY is still drained; 'close' follows
    socket.once('close', () => resolve());
    socket.resume();
  });
}

export interface CopyOutResult<T> {
  value: T;
  /** The COPY's row count, known once the statement queued after it has run (it comes with the command tag). */
  copy: { readonly rowCount: number };
}

/**
 * Runs `sql`, a COPY ... TO STDOUT, and hands its output to `consume` as a stream that `consume` may
 * stop reading at any point (throw, or destroy the stream) without leaving the session stuck.
 *
 * pg-copy-streams takes the connection's socket over for a COPY and gives it back to node-postgres only
 * when the server ends the COPY; destroying its stream just stops reading the socket. The server then
 * blocks writing, and every later statement on the session (the ROLLBACK that ends the snapshot) waits
 * behind the COPY forever. So `consume` gets a stream fed from the COPY, and when `consume` fails before
 * the COPY has ended, the COPY is cancelled and the rest of its output read and dropped until the server
 * hands the session back; the session is then usable again. If that takes longer than
 * STOP_COPY_WITHIN_MS, the connection is closed (a pooled one is then discarded by the failed ROLLBACK).
 */
export async function copyOut<T>(client: pg.ClientBase, sql: string, consume: (rows: Readable) => Promise<T>): Promise<CopyOutResult<T>> {
  const copy = client.query(copyTo(sql));
  const rows = new PassThrough();
  let ended = false;
  const copyEnded = new Promise<void>((resolve) => {
    const end = () => {
      ended = true;
      resolve();
    };
    copy.once('end', end);
    // Kept for good: a cancelled COPY reports its error after the consumer has gone.
    copy.on('error', (e) => {
      end();
      rows.destroy(e);
    });
  });
  copy.pipe(rows);
  try {
    return { value: await consume(rows), copy };
  } finally {
    if (!ended) await stopCopy(client, copy, copyEnded);
  }
}

async function stopCopy(client: pg.ClientBase, copy: Readable, copyEnded: Promise<void>): Promise<void> {
  copy.unpipe();
  copy.resume(); // read and drop the rest
  const cancelled = requestCancel(client);
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([
    copyEnded.then(() => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), STOP_COPY_WITHIN_MS);
    }),
  ]);
  clearTimeout(timer);
  // With a statement still active, end() closes the socket at once; the COPY and what is queued behind it fail.
  if (!stopped) await (client as pg.Client).end().catch(() => {});
  await cancelled;
}

export interface StreamHead {
  seq: number;
  /** Lowercase hex of the head event's hash (the genesis hash for an empty stream). */
  hash: string;
  /** True only inside a transaction that has appended two or more events to the stream (recorded at its commit). */
  pending: boolean;
}

/**
 * The recorded head of a stream, or null when the stream has none. Read from the view chainlog.streams
 * (a plain read of chainlog.stream_heads; the view is what chainlog_reader may select).
 */
export async function readStreamHead(client: pg.ClientBase, stream: string): Promise<StreamHead | null> {
  const { rows } = await client.query<{ head_seq: string; head_hash: Buffer; head_pending: boolean }>(
    'select h.head_seq, h.head_hash, h.head_pending from chainlog.streams h where h.stream = $1',
    [stream],
  );
  const row = rows[0];
  return row ? { seq: Number(row.head_seq), hash: toHex(row.head_hash), pending: row.head_pending } : null;
}

export interface ExportProgress {
  /** Lines written so far (exact for NDJSON; a CSV value holding a newline counts twice). */
  rows: number;
  bytes: number;
}

export interface ExportOptions {
  /**
   * A pool (a connection is borrowed) or a client (a transaction already open on it is joined). When the
   * export fails partway (its output, onProgress), its COPY is cancelled: the client stays usable, in the
   * transaction it was in (its connection is closed only if the server does not stop within 5 seconds).
   */
  db: Db;
  stream: string;
  /** First seq to export (inclusive). Default 1. */
  fromSeq?: number;
  /** Last seq to export (inclusive). Default and cap: the stream's recorded head when the export starts. */
  toSeq?: number;
  /**
   * Only events recorded at or after this instant. A string is read by PostgreSQL as a timestamptz, to the
   * microsecond, in the export's pinned TimeZone (UTC) when it gives no offset: whatever search() takes
   * (2025-01-31T09:30+02, a leap second 23:59:60). One PostgreSQL cannot read is refused before the
   * output is opened.
   */
  from?: Date | string;
  /** Only events recorded before this instant (read like from). */
  to?: Date | string;
  /**
   * csv: a header line, then one line per event, every column as PostgreSQL prints it (TimeZone UTC,
   * DateStyle ISO); an unquoted empty field is SQL NULL, "" is an empty string.
   * ndjson: one JSON object per line; payload, before and after are nested JSON exactly as PostgreSQL
   * prints the jsonb; hashes are lowercase hex; a column that is SQL NULL is left out of the object.
   */
  format: 'csv' | 'ndjson';
  /**
   * A file path (created or truncated) or a stream, which is ended when the export finishes. When it
   * fails (EPIPE, ENOSPC, a write() that throws, ...) the export rejects with a ChainlogError naming it,
   * with its code (CHAINLOG_OUTPUT when it has none). When the export fails, a regular file at the path
   * is removed (emptied, when the path is a symbolic link to it); a FIFO, device or socket is left alone.
   */
  output: string | Writable;
  onProgress?: (progress: ExportProgress) => void;
}

export interface ExportResult {
  /** Events written. */
  rows: number;
  bytes: number;
  /** The stream's recorded head when the export started; no event after it is exported. */
  headSeq: number;
  /** Hex hash of that head event: give it with headSeq to verifyOfflineFile's expectedHead. */
  headHash: string;
  /** Seq of the first event written (null when none was): verifyOfflineFile's fromSeq for a partial export. */
  firstSeq: number | null;
  /**
   * Seq and hex hash of the last event written (null when none was). An export cut short of the head
   * (toSeq) ends here, so this, not headSeq/headHash, is the expectedHead to verify it against.
   */
  lastSeq: number | null;
  lastHash: string | null;
}

function integer(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ChainlogInvalidArgumentError(`${name} must be a non-negative integer, not ${value}. Leave it out to export from the start or up to the recorded head.`, {
      code: 'CHAINLOG_INVALID_ARGUMENT',
    });
  }
  return value;
}

function timestamp(name: string, value: Date | string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && value.trim() !== '') return value;
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new ChainlogInvalidArgumentError(`${name} must be a valid Date or a timestamp string, not ${String(value)}.`, { code: 'CHAINLOG_INVALID_ARGUMENT' });
  }
  return value.toISOString();
}

// The SQLSTATE class of data exceptions: 22007 invalid_datetime_format, 22008 datetime_field_overflow...
const DATA_EXCEPTION = /^22/;

/**
 * A time option as PostgreSQL reads it in the pinned session (UTC when it gives no offset), printed to
 * the microsecond. PostgreSQL, not JavaScript, decides what is a time, as for search(): the same
 * strings are taken. One it cannot read is the caller's mistake, said before the output is opened.
 */
async function readTime(client: pg.ClientBase, name: string, value: string | undefined): Promise<string | undefined> {
  if (value === undefined) return undefined;
  try {
    const { rows } = await client.query<{ t: string }>('select $1::pg_catalog.timestamptz::pg_catalog.text as t', [value]);
    return rows[0]!.t;
  } catch (e) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code !== 'string' || !DATA_EXCEPTION.test(code)) throw e;
    throw new ChainlogInvalidArgumentError(
      `${name} is not a time PostgreSQL can read: ${JSON.stringify(value)} (${String(message)}). Give an ISO 8601 date or time, e.g. 2025-01-31 or 2025-01-31T09:30:00+02:00.`,
      { code: 'CHAINLOG_INVALID_ARGUMENT', cause: e },
    );
  }
}

interface ExportFilter {
  stream: string;
  fromSeq?: number;
  toSeq: number;
  from?: string;
  to?: string;
}

/** The rows an export selects: FROM and WHERE, values as quoted literals. */
function exportFrom(client: pg.ClientBase, o: ExportFilter): string {
  const where = [`e.stream = ${client.escapeLiteral(o.stream)}`, `e.seq <= ${o.toSeq}`];
  if (o.fromSeq !== undefined) where.push(`e.seq >= ${o.fromSeq}`);
  if (o.from !== undefined) where.push(`e.recorded_at >= ${client.escapeLiteral(o.from)}::pg_catalog.timestamptz`);
  if (o.to !== undefined) where.push(`e.recorded_at < ${client.escapeLiteral(o.to)}::pg_catalog.timestamptz`);
  return `from chainlog.events e where ${where.join(' and ')}`;
}

/** The COPY statement of an export. COPY takes no bind parameters, so values are quoted literals. */
export function exportCopySql(client: pg.ClientBase, o: ExportFilter & { format: 'csv' | 'ndjson' }): string {
  const filter = `${exportFrom(client, o)} order by e.seq, e.id`;
  if (o.format === 'csv') {
    return `copy (select ${EXPORT_COLUMNS.map((c) => `e.${c}`).join(', ')} ${filter}) to stdout (format csv, header true)`;
  }
  return `copy (select ${NDJSON_FIELDS.map((f) => f.select).join(', ')} ${filter}) to stdout (format binary)`;
}

// NDJSON: PostgreSQL streams the columns in binary and Node builds the lines (src/ndjson-lines.ts), so
// the server does about what a plain COPY does and the JSON is built on another core. Only what Node
// must not redo is left to PostgreSQL: timestamps print as to_json() prints them (ISO 8601 in the pinned
// TimeZone), and an inet as its output function prints it (inet::text would add a /32). The jsonb is
// spliced in as PostgreSQL prints it, which is the exact text the data digest hashes; a jsonb column
// that is SQL NULL is left out, not written as null (the digest hashes '' for the first and 'null' for
// JSON null).
function ndjsonField(name: ExportColumn): NdjsonField & { select: string } {
  switch (name) {
    case 'id':
    case 'seq':
    case 'format_version':
      return { name, select: `e.${name}`, kind: 'int' };
    case 'recorded_at':
    case 'occurred_at':
    case 'source_ip':
      return { name, select: `pg_catalog.to_json(e.${name})`, kind: 'json' };
    case 'payload':
    case 'before':
    case 'after':
      return { name, select: `e.${name}`, kind: 'jsonb' };
    case 'data_digest':
    case 'prev_hash':
    case 'hash':
      return { name, select: `e.${name}`, kind: 'hex' };
    default:
      return { name, select: `e.${name}`, kind: 'text' };
  }
}

const NDJSON_FIELDS = EXPORT_COLUMNS.map(ndjsonField);

/**
 * Passes a CSV COPY through to the output, counting its bytes (and, for onProgress, its lines). A stage
 * of the pipeline rather than a 'data' listener, so that an onProgress that throws fails the export
 * instead of escaping from the socket's event handler.
 */
class CsvCounter extends Transform {
  bytes = 0;
  private lines = 0;

  constructor(private readonly onProgress: ExportOptions['onProgress']) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    try {
      if (this.onProgress) {
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) this.lines++;
        // Minus the header line.
        this.onProgress({ rows: Math.max(0, this.lines - 1), bytes: this.bytes });
      }
    } catch (e) {
      return done(e as Error);
    }
    done(null, chunk);
  }
}

/**
 * The last stage before the output. A stream reports a failed write through its callback; a Writable
 * whose write() throws instead throws into whoever called write(): pipe(), from this stage's 'data'
 * event, which fires inside the previous stage's push() or inside a 'drain' or nextTick callback. Caught
 * here, the failure is the output's (onThrow) and fails the export, rather than passing for the
 * previous stage's or escaping from an event handler, which would end the process.
 */
class OutputGuard extends PassThrough {
  constructor(private readonly onThrow: (e: unknown) => void) {
    super();
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'data') return super.emit(event, ...args);
    try {
      return super.emit(event, ...args);
    } catch (e) {
      this.onThrow(e);
      this.destroy(e as Error);
      return false;
    }
  }
}

/** A file an export writes to, and how to take back what it wrote when the export fails. */
interface OutputFile {
  sink: Writable;
  discard(): Promise<void>;
}

/**
 * Opens `path` for an export: created, or truncated. A failed export takes back what it wrote only
 * from a regular file, its own or one it truncated: emptied, then removed when the path names it (a
 * symbolic link to it is someone else's and stays, pointing at the empty file). A FIFO, a device or a
 * socket (a named pipe a reader is on, /dev/stdout) is left alone: the export did not make it, and what
 * went through it cannot be taken back. The file is recognised by device and inode, as opened: the
 * path may name something else by the time the export fails.
 */
async function openOutputFile(path: string): Promise<OutputFile> {
  const handle = await open(path, 'w');
  let opened: Stats;
  try {
    opened = await handle.stat();
  } catch (e) {
    await handle.close().catch(() => {});
    throw e;
  }
  const sink = handle.createWriteStream(); // closes the handle when it ends or is destroyed
  const same = (s: Stats | null) => s !== null && s.dev === opened.dev && s.ino === opened.ino;
  return {
    sink,
    async discard() {
      // Closed first, so that no write still in flight lands after the file was emptied. ('close'
      // itself: events.once() would settle early on the 'error' a destroyed stream may still emit.)
      if (!sink.closed) {
        const closed = new Promise<void>((resolve) => sink.once('close', () => resolve()));
        sink.destroy();
        await closed;
      }
      if (!opened.isFile()) return;
      // Non-blocking: should the path be a FIFO by now, opening it must not wait for a reader.
      const file = await open(path, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK).catch(() => null);
      if (file) {
        try {
          if (same(await file.stat())) await file.truncate(0);
        } finally {
          await file.close();
        }
      }
      const named = await lstat(path).catch(() => null);
      if (named?.isFile() && same(named)) await unlink(path);
    },
  };
}

/** The output of an export, as an error message names it. */
function outputName(output: string | Writable): string {
  if (typeof output === 'string') return JSON.stringify(output);
  if (output === process.stdout) return 'standard output';
  return 'the output stream';
}

/**
 * The error for an export whose output failed (a closed pipe, a full disk, a reader that went away, a
 * path that cannot be opened): named as the output's, not the database's, with the system error's code
 * (EPIPE, ENOSPC, ...) or CHAINLOG_OUTPUT. The database session is fine, and stays in the pool.
 */
function outputError(e: unknown, output: string | Writable): ChainlogError {
  const { code, message } = (typeof e === 'object' && e !== null ? e : { message: String(e) }) as { code?: unknown; message?: unknown };
  const hint = 'Nothing is wrong with the database: check where the export is written (a pipe whose reader exited, a full disk, a missing folder).';
  return new ChainlogError(`could not write the export to ${outputName(output)}: ${String(message)}. ${hint}`, {
    code: typeof code === 'string' ? code : 'CHAINLOG_OUTPUT',
    cause: e,
    hint,
  });
}

/**
 * Writes the events of `stream` (up to its recorded head at the start) to `output` as CSV or NDJSON.
 * One snapshot, pinned settings: the same events always export to the same bytes.
 */
export async function exportEvents(options: ExportOptions): Promise<ExportResult> {
  const { db, stream, format, output, onProgress } = options;
  if (format !== 'csv' && format !== 'ndjson') {
    throw new ChainlogInvalidArgumentError(`unknown export format ${String(format)}. Use 'csv' or 'ndjson'.`, {
      code: 'CHAINLOG_INVALID_ARGUMENT',
    });
  }
  const fromSeq = integer('fromSeq', options.fromSeq);
  const toSeqOption = integer('toSeq', options.toSeq);
  const fromOption = timestamp('from', options.from);
  const toOption = timestamp('to', options.to);

  return withPinnedSnapshot(db, async (client) => {
    const head = await readStreamHead(client, stream);
    if (!head) {
      throw new ChainlogUnknownStreamError(`there is no stream "${stream}". SELECT stream FROM chainlog.streams lists the streams.`, {
        code: 'LC005',
        stream,
      });
    }
    const toSeq = Math.min(head.seq, toSeqOption ?? head.seq);
    const fromTime = await readTime(client, 'from', fromOption);
    const toTime = await readTime(client, 'to', toOption);
    let file: OutputFile | undefined;
    if (typeof output === 'string') {
      try {
        file = await openOutputFile(output);
      } catch (e) {
        throw outputError(e, output);
      }
    }
    const sink = file?.sink ?? (output as Writable);
    const counter = format === 'csv' ? new CsvCounter(onProgress) : new NdjsonLines(NDJSON_FIELDS, onProgress);
    // Which failed first, the output or what feeds it (the COPY, onProgress): the pipeline then destroys
    // every other stage with that same error.
    let outputFailedFirst: boolean | undefined;
    counter.on('error', () => {
      outputFailedFirst ??= false;
    });
    const onOutputError = () => {
      outputFailedFirst ??= true;
    };
    sink.on('error', onOutputError);
    const guard = new OutputGuard(onOutputError);
    let copy: CopyOutResult<void>['copy'];
    try {
      ({ copy } = await copyOut(client, exportCopySql(client, { stream, fromSeq, toSeq, from: fromTime, to: toTime, format }), async (rows) => {
        rows.on('error', () => {
          outputFailedFirst ??= false;
        });
        await pipeline(rows, counter, guard, sink);
      }));
    } catch (e) {
      // A file cut short would pass for an export of fewer events: take back what this call wrote.
      await file?.discard().catch(() => {});
      throw outputFailedFirst ? outputError(e, output) : e;
    } finally {
      sink.removeListener('error', onOutputError);
    }
    // The first and last rows written, read in the same snapshot with the same filter and order. Queued
    // behind the COPY, this also waits for the row count, which arrives with COPY's command tag.
    const from = exportFrom(client, { stream, fromSeq, toSeq, from: fromTime, to: toTime });
    const { rows } = await client.query<{ first_seq: string | null; last_seq: string | null; last_hash: string | null }>(
      `select (select e.seq::pg_catalog.text ${from} order by e.seq, e.id limit 1) as first_seq,
              l.seq::pg_catalog.text as last_seq, pg_catalog.encode(l.hash, 'hex') as last_hash
         from (select 1) one
         left join (select e.seq, e.hash ${from} order by e.seq desc, e.id desc limit 1) l on true`,
    );
    const ends = rows[0]!;
    return {
      rows: copy.rowCount,
      bytes: counter.bytes,
      headSeq: head.seq,
      headHash: head.hash,
      firstSeq: ends.first_seq === null ? null : Number(ends.first_seq),
      lastSeq: ends.last_seq === null ? null : Number(ends.last_seq),
      lastHash: ends.last_hash,
    };
  });
}
