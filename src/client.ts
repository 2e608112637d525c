// The TypeScript API: createChainlog() returns a handle whose methods call chainlog's public SQL
// interface (chainlog.append, COPY into chainlog.events, chainlog.verify, chainlog.streams).
//
// Conventions, decided once for the whole package (docs in README "TypeScript API"):
//   * ids and seqs are decimal strings: exact for the whole bigint range and JSON-safe, as
//     node-postgres returns bigint by default. Counts (checked, count) are numbers.
//   * hashes are lowercase hex strings (64 characters).
//   * timestamps are ISO 8601 strings in UTC with microseconds ("2025-01-02T03:04:05.123456Z"):
//     exactly what was hashed. A JS Date would drop the microseconds.
// Every value is converted in SQL (::text, encode(), to_char()), so results do not depend on the type
// parsers configured on a pool the caller hands us.
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { applyCheckpoint, checkpointWithin, removedStream, type CheckpointArg } from './checkpoint.js';
import { ChainlogError, ChainlogUnknownStreamError, invalidArgument, toChainlogError } from './errors.js';
import { exportEvents, onWatchedSession, type ExportProgress } from './export.js';
import { verifyOffline as verifyOfflineImpl, type VerifyProgress } from './offline-verify.js';

/** A pool, or a client (a pool client too) whose session, and open transaction, calls should use. */
export type Db = pg.Pool | pg.ClientBase;

export interface CallOptions {
  /** Run on this pool or client instead of the handle's. Pass the client of an open transaction to join it. */
  db?: Db;
}

export interface ChainlogOptions {
  /** Connection string for a pool chainlog opens (and close() ends). Default: DATABASE_URL. */
  connectionString?: string;
  /** Use this pool; close() leaves it open. */
  pool?: pg.Pool;
  /** Use this connected client (one session: do not run calls on it concurrently); close() leaves it open. */
  client?: pg.ClientBase;
}

export type ActorType = 'user' | 'api_key' | 'service' | 'system';
export type EventResult = 'success' | 'failure';

/** An event to append. Omitted context (actor, actorType, sourceIp, requestId) comes from withContext() or the session. */
export interface NewEvent {
  eventType: string;
  action: string;
  /** Default 'default'. */
  stream?: string;
  /** Default: the chainlog.actor setting (withContext), then the database role. */
  actor?: string;
  actorType?: ActorType;
  /** Default 'success'. */
  result?: EventResult;
  resourceType?: string;
  resourceId?: string;
  /** Any JSON value; undefined and null both store SQL NULL. Sent as JSON.stringify() writes it. */
  payload?: unknown;
  before?: unknown;
  after?: unknown;
  /**
   * Instead of payload: the payload as JSON text, which PostgreSQL parses into the jsonb as written, so
   * numbers keep every digit (12345678901234567890, 0.1000, 1.0), where JSON.parse() and JSON.stringify()
   * round them to doubles. Text that is not JSON is refused by PostgreSQL (SQLSTATE 22P02).
   */
  payloadJson?: string;
  /** Instead of before: its JSON text (see payloadJson). */
  beforeJson?: string;
  /** Instead of after: its JSON text (see payloadJson). */
  afterJson?: string;
  /** When the event happened, as the client says. A Date or an ISO 8601 string. */
  occurredAt?: Date | string;
  /** IPv4 or IPv6 address. Default: the chainlog.source_ip setting, then the client's address. */
  sourceIp?: string;
  requestId?: string;
}

/** A stored event. */
export interface ChainlogEvent {
  id: string;
  stream: string;
  seq: string;
  recordedAt: string;
  occurredAt: string | null;
  actor: string;
  actorType: ActorType;
  eventType: string;
  action: string;
  result: EventResult;
  resourceType: string | null;
  resourceId: string | null;
  sourceIp: string | null;
  requestId: string | null;
  /** The payload as JSON.parse() reads it: numbers beyond a double's precision are rounded (see payloadJson). */
  payload: unknown;
  before: unknown;
  after: unknown;
  /**
   * The payload exactly as stored: PostgreSQL's text for the jsonb (payload::text), every digit kept
   * (12345678901234567890, 0.1000). This text, with before's and after's, is what the data digest
   * hashes (docs/FORMAT.md). NULL when there is no payload.
   */
  payloadJson: string | null;
  /** before exactly as stored (see payloadJson). */
  beforeJson: string | null;
  /** after exactly as stored (see payloadJson). */
  afterJson: string | null;
  formatVersion: number;
  dataDigest: string;
  prevHash: string;
  hash: string;
}

export interface AppendResult {
  id: string;
  stream: string;
  seq: string;
  hash: string;
}

export interface StreamHead {
  stream: string;
  seq: string;
  hash: string;
}

export interface AppendManyResult {
  /** Events written. */
  count: number;
  /** The head of every stream written to, after this batch, sorted by stream. */
  heads: StreamHead[];
}

/** Who is acting: stored on every event appended inside withContext() that does not say otherwise. */
export interface EventContext {
  actor?: string;
  actorType?: ActorType;
  sourceIp?: string;
  requestId?: string;
}

export interface SearchQuery {
  stream?: string;
  eventType?: string;
  action?: string;
  result?: EventResult;
  resourceType?: string;
  resourceId?: string;
  actor?: string;
  /** recorded_at >= from */
  from?: Date | string;
  /** recorded_at < to */
  to?: Date | string;
  /** Page size, 1..1000. Default 50. */
  limit?: number;
  /** nextCursor of the previous page. */
  cursor?: string;
}

export interface SearchPage {
  /** Newest first: by recordedAt, then id. */
  events: ChainlogEvent[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface VerifyReport {
  stream: string;
  ok: boolean;
  /** Events verified intact before the first problem (all of them when ok). */
  checked: number;
  firstBadSeq: string | null;
  /** modified, deleted, inserted, reordered, truncated or forked; null when intact. */
  problem: string | null;
  detail: string | null;
}

export type { CheckpointArg };

export interface VerifyArgs {
  stream: string;
  /** Verify only events 1..upToSeq. */
  upToSeq?: string | number | bigint;
  /**
   * A stream's head recorded earlier, outside the database: SEQ:HASH as `chainlog export` prints it, or
   * { seq, hash }. The stream must then also still hold that event with that hash, which catches a
   * chain rewritten to its end together with its recorded head (docs/THREAT-MODEL.md). verifyOffline()
   * compares it with the hash it recomputed.
   */
  checkpoint?: CheckpointArg;
}

export interface VerifyOfflineArgs extends VerifyArgs {
  /** Called as rows arrive. */
  onProgress?: (progress: VerifyProgress) => void;
  /** Worker threads that recompute the hashes (0: none). Default: cores - 1, at most 4, from 10,000 events. */
  workers?: number;
}

export interface ExportArgs {
  stream: string;
  /** First seq to export (inclusive). Default 1. */
  fromSeq?: string | number | bigint;
  /** Last seq to export (inclusive). Default and cap: the stream's recorded head when the export starts. */
  toSeq?: string | number | bigint;
  /**
   * Only events recorded at or after this time. A string is read by PostgreSQL, to the microsecond; one
   * without an offset is UTC.
   */
  from?: Date | string;
  /** Only events recorded before this time (read like from). */
  to?: Date | string;
  /** csv or ndjson; both hold every column needed to verify the file offline (docs/FORMAT.md). */
  format: 'csv' | 'ndjson';
  /** A file path (created or truncated) or a stream, which is ended when the export finishes. */
  output: string | Writable;
  onProgress?: (progress: ExportProgress) => void;
}

export interface ExportSummary {
  /** Events written. */
  rows: number;
  bytes: number;
  /** The stream's recorded head when the export started; no later event is exported. */
  headSeq: string;
  /** Hex hash of that head: give both to `chainlog verify --file` (or verifyOfflineFile's expectedHead). */
  headHash: string;
  /** Seq of the first event written; null when none was. */
  firstSeq: string | null;
  /**
   * Seq and hash of the last event written; null when none was. For an export cut short of the head
   * (toSeq), this is the head to verify the file against instead of headSeq/headHash.
   */
  lastSeq: string | null;
  lastHash: string | null;
}

export interface StreamInfo {
  stream: string;
  headSeq: string;
  headHash: string;
  createdAt: string;
  lastAppendedAt: string;
}

export interface Chainlog {
  /** The pool or client calls run on unless given `{ db }`. */
  readonly db: Db;
  append(event: NewEvent, options?: CallOptions): Promise<AppendResult>;
  appendMany(events: readonly NewEvent[], options?: CallOptions): Promise<AppendManyResult>;
  withContext<T>(context: EventContext, fn: (tx: Chainlog) => Promise<T>, options?: CallOptions): Promise<T>;
  search(query?: SearchQuery, options?: CallOptions): Promise<SearchPage>;
  get(id: string | number | bigint, options?: CallOptions): Promise<ChainlogEvent | null>;
  verify(args: VerifyArgs, options?: CallOptions): Promise<VerifyReport>;
  verifyAll(options?: CallOptions): Promise<VerifyReport[]>;
  /** Like verify(), but reads the events out and recomputes every hash in Node.js, trusting no chainlog SQL. */
  verifyOffline(args: VerifyOfflineArgs, options?: CallOptions): Promise<VerifyReport>;
  /** Writes a stream's events, hashes included, to a CSV or NDJSON file or stream. */
  export(args: ExportArgs, options?: CallOptions): Promise<ExportSummary>;
  streams(options?: CallOptions): Promise<StreamInfo[]>;
  /** Ends the pool chainlog opened itself; leaves a pool or client you passed in open. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Sessions and transactions

// Sessions that must not go back to the pool: a COPY or a ROLLBACK failed on them halfway.
const brokenSessions = new WeakSet<pg.ClientBase>();

/** Runs fn on one session (onWatchedSession), which is not lent again when fn left it in brokenSessions. */
function onSession<T>(db: Db, fn: (client: pg.ClientBase) => Promise<T>): Promise<T> {
  return onWatchedSession(db, async (client, unusable) => {
    try {
      return await fn(client);
    } finally {
      if (brokenSessions.has(client)) unusable();
    }
  });
}

/** 'I' idle, 'T' in a transaction, 'E' in a failed transaction. */
async function transactionStatus(client: pg.ClientBase): Promise<'I' | 'T' | 'E'> {
  const status = typeof client.getTransactionStatus === 'function' ? client.getTransactionStatus() : null;
  if (status === 'I' || status === 'T' || status === 'E') return status;
  // Older node-postgres: a SAVEPOINT fails outside a transaction block (and harms nothing there).
  try {
    await client.query('savepoint chainlog_probe');
  } catch (e) {
    if ((e as { code?: string }).code === '25P01') return 'I';
    if ((e as { code?: string }).code === '25P02') return 'E';
    throw e;
  }
  await client.query('release savepoint chainlog_probe');
  return 'T';
}

/**
 * Runs fn in a transaction on one session. When the client is already in a transaction, fn joins it
 * (the caller commits); otherwise we BEGIN and COMMIT, or ROLLBACK when fn throws.
 */
async function inTransaction<T>(db: Db, fn: (client: pg.ClientBase, joined: boolean) => Promise<T>): Promise<T> {
  return onSession(db, async (client) => {
    const status = await transactionStatus(client);
    if (status === 'E') {
      throw toChainlogError({ code: '25P02', message: 'current transaction is aborted' });
    }
    if (status === 'T') return fn(client, true);
    await run(client, 'begin');
    try {
      const result = await fn(client, false);
      // Deferred checks run here (chainlog settles stream heads at commit), so COMMIT can fail too.
      await run(client, 'commit');
      return result;
    } catch (e) {
      await client.query('rollback').catch(() => brokenSessions.add(client));
      throw e;
    }
  });
}

async function run<R extends pg.QueryResultRow>(
  db: Db | pg.ClientBase,
  query: string | pg.QueryConfig,
  values?: unknown[],
): Promise<pg.QueryResult<R>> {
  try {
    return await (typeof query === 'string' ? db.query<R>(query, values) : db.query<R>(query));
  } catch (e) {
    throw toChainlogError(e);
  }
}

// ---------------------------------------------------------------------------------------------------
// Values in and out

/**
 * An ISO 8601 date or time, as the CLI's time options take it: the date, the time (seconds, a leap
 * second and microseconds optional) and the offset (Z, +02, +0200, +02:00) in groups 1, 2 and 3.
 */
const ISO_TIME =
  /^(\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01]))(?:[T ]((?:[01]\d|2[0-3]):[0-5]\d(?::(?:[0-5]\d|60)(?:\.\d{1,6})?)?))?\s*(Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?$/i;

/**
 * An ISO 8601 date or time with its offset spelled out (Z when it gives none: UTC), for PostgreSQL to
 * read the same whatever the session's TimeZone; undefined when `text` is not one.
 */
export function isoTimeWithOffset(text: string): string | undefined {
  const m = ISO_TIME.exec(text.trim());
  if (!m) return undefined;
  const zone = m[3] === undefined || m[3].toUpperCase() === 'Z' ? 'Z' : m[3];
  return `${m[1]}T${m[2] ?? '00:00:00'}${zone}`;
}

/**
 * A search() bound: an ISO 8601 string without an offset is UTC, as export() and the CLI read it,
 * whatever the server's TimeZone (which PostgreSQL would apply). Other strings go to PostgreSQL as
 * written.
 */
function searchTimeParam(value: Date | string | undefined, name: string): string | null {
  const text = timestampParam(value, name);
  if (text === null || value instanceof Date) return text;
  return isoTimeWithOffset(text) ?? text;
}

function timestampParam(value: Date | string | undefined, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw invalidArgument(`${name} is an invalid Date.`);
    return value.toISOString();
  }
  if (typeof value !== 'string' || value === '') throw invalidArgument(`${name} must be a Date or an ISO 8601 string.`);
  return value;
}

function jsonParam(value: unknown, name: string, text?: unknown): string | null {
  if (text !== undefined && text !== null) {
    if (value !== undefined && value !== null) throw invalidArgument(`give ${name} or ${name}Json, not both.`);
    if (typeof text !== 'string') throw invalidArgument(`${name}Json must be JSON text (a string), not ${typeof text}.`);
    return text;
  }
  if (value === undefined || value === null) return null;
  try {
    return JSON.stringify(value);
  } catch (e) {
    throw invalidArgument(`${name} cannot be stored as JSON: ${(e as Error).message}.`);
  }
}

function bigintParam(value: string | number | bigint | undefined | null, name: string): string | null {
  if (value === undefined || value === null) return null;
  const text = String(value);
  if (!/^-?\d+$/.test(text)) throw invalidArgument(`${name} must be an integer, not ${JSON.stringify(value)}.`);
  return text;
}

/** A seq for the modules that take numbers (offline verify, export): exact up to 2^53. */
function seqNumber(value: string | number | bigint | undefined, name: string): number | undefined {
  const text = bigintParam(value, name);
  if (text === null) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw invalidArgument(`${name} is out of range: ${text}.`);
  return n;
}

// The one place database rows become ChainlogEvent: SQL converts, mapEvent renames.
const UTC_MICROS = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;
export const EVENT_COLUMNS = `
  e.id::text as id, e.stream, e.seq::text as seq,
  pg_catalog.to_char(e.recorded_at at time zone 'UTC', ${UTC_MICROS}) as recorded_at,
  pg_catalog.to_char(e.occurred_at at time zone 'UTC', ${UTC_MICROS}) as occurred_at,
  e.actor, e.actor_type, e.event_type, e.action, e.result, e.resource_type, e.resource_id,
  pg_catalog.abbrev(e.source_ip) as source_ip, e.request_id,
  e.payload::text as payload, e.before::text as before, e.after::text as after,
  e.format_version::int as format_version,
  pg_catalog.encode(e.data_digest, 'hex') as data_digest,
  pg_catalog.encode(e.prev_hash, 'hex') as prev_hash,
  pg_catalog.encode(e.hash, 'hex') as hash`;

interface EventRow {
  id: string;
  stream: string;
  seq: string;
  recorded_at: string;
  occurred_at: string | null;
  actor: string;
  actor_type: ActorType;
  event_type: string;
  action: string;
  result: EventResult;
  resource_type: string | null;
  resource_id: string | null;
  source_ip: string | null;
  request_id: string | null;
  payload: string | null;
  before: string | null;
  after: string | null;
  format_version: number;
  data_digest: string;
  prev_hash: string;
  hash: string;
}

const parseJson = (text: string | null): unknown => (text === null ? null : JSON.parse(text));

export function mapEvent(r: EventRow): ChainlogEvent {
  return {
    id: r.id,
    stream: r.stream,
    seq: r.seq,
    recordedAt: r.recorded_at,
    occurredAt: r.occurred_at,
    actor: r.actor,
    actorType: r.actor_type,
    eventType: r.event_type,
    action: r.action,
    result: r.result,
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    sourceIp: r.source_ip,
    requestId: r.request_id,
    payload: parseJson(r.payload),
    before: parseJson(r.before),
    after: parseJson(r.after),
    payloadJson: r.payload,
    beforeJson: r.before,
    afterJson: r.after,
    formatVersion: r.format_version,
    dataDigest: r.data_digest,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

// ---------------------------------------------------------------------------------------------------
// append

const APPEND: pg.QueryConfig['text'] = `
  select a.id::text as id, a.stream, a.seq::text as seq, pg_catalog.encode(a.hash, 'hex') as hash
    from chainlog.append(
      event_type => $1, action => $2, stream => coalesce($3, 'default'), actor => $4, actor_type => $5,
      result => coalesce($6, 'success'), resource_type => $7, resource_id => $8,
      payload => $9::jsonb, before => $10::jsonb, after => $11::jsonb,
      occurred_at => $12::timestamptz, source_ip => $13::inet, request_id => $14) a`;

function appendValues(e: NewEvent): unknown[] {
  if (typeof e !== 'object' || e === null) throw invalidArgument('append() needs an event object.');
  return [
    e.eventType ?? null,
    e.action ?? null,
    e.stream ?? null,
    e.actor ?? null,
    e.actorType ?? null,
    e.result ?? null,
    e.resourceType ?? null,
    e.resourceId ?? null,
    jsonParam(e.payload, 'payload', e.payloadJson),
    jsonParam(e.before, 'before', e.beforeJson),
    jsonParam(e.after, 'after', e.afterJson),
    timestampParam(e.occurredAt, 'occurredAt'),
    e.sourceIp ?? null,
    e.requestId ?? null,
  ];
}

// ---------------------------------------------------------------------------------------------------
// appendMany: COPY ... FROM STDIN, streamed in chunks

const COPY_COLUMNS = [
  'stream', 'event_type', 'action', 'actor', 'actor_type', 'result', 'resource_type', 'resource_id',
  'payload', 'before', 'after', 'occurred_at', 'source_ip', 'request_id',
] as const;
export const COPY_EVENTS = `copy chainlog.events (${COPY_COLUMNS.join(', ')}) from stdin`;

const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const NEEDS_ESCAPE = /[\\\t\n\r]/;
const ESCAPE_ALL = /[\\\t\n\r]/g;

/** One value in COPY's text format. */
function copyField(value: string | null | undefined): string {
  if (value === null || value === undefined) return '\\N';
  return NEEDS_ESCAPE.test(value) ? value.replace(ESCAPE_ALL, (c) => COPY_ESCAPES[c]!) : value;
}

function copyLine(e: NewEvent): string {
  return (
    copyField(e.stream ?? 'default') + '\t' +
    copyField(e.eventType) + '\t' +
    copyField(e.action) + '\t' +
    copyField(e.actor) + '\t' +
    copyField(e.actorType) + '\t' +
    copyField(e.result ?? 'success') + '\t' +
    copyField(e.resourceType) + '\t' +
    copyField(e.resourceId) + '\t' +
    copyField(jsonParam(e.payload, 'payload', e.payloadJson)) + '\t' +
    copyField(jsonParam(e.before, 'before', e.beforeJson)) + '\t' +
    copyField(jsonParam(e.after, 'after', e.afterJson)) + '\t' +
    copyField(timestampParam(e.occurredAt, 'occurredAt')) + '\t' +
    copyField(e.sourceIp) + '\t' +
    copyField(e.requestId) + '\n'
  );
}

const CHUNK_CHARS = 256 * 1024;

/** COPY data in ~256 KiB chunks, in the given order: memory stays flat however long the batch. */
function* copyChunks(events: readonly NewEvent[], order: Uint32Array): Generator<string> {
  let chunk = '';
  for (const i of order) {
    try {
      chunk += copyLine(events[i]!);
    } catch (e) {
      // Bad values are found while streaming; say which event, in the caller's numbering.
      throw invalidArgument(`appendMany(): events[${i}]: ${(e as Error).message}`);
    }
    if (chunk.length >= CHUNK_CHARS) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}

/**
 * Indices of `events` sorted by stream (stable within a stream). Every appendMany() takes its
 * streams' locks in this one order, so two batches touching the same streams cannot deadlock.
 */
function streamOrder(events: readonly NewEvent[]): { order: Uint32Array; streams: string[] } {
  const keys = events.map((e, i) => {
    if (typeof e !== 'object' || e === null) throw invalidArgument(`appendMany(): events[${i}] is not an event object.`);
    const stream = e.stream ?? 'default';
    if (typeof stream !== 'string') throw invalidArgument(`appendMany(): events[${i}].stream must be a string.`);
    return stream;
  });
  const order = Uint32Array.from(keys.keys());
  order.sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : a - b));
  const streams: string[] = [];
  for (const i of order) if (streams[streams.length - 1] !== keys[i]) streams.push(keys[i]!);
  return { order, streams };
}

const HEADS_AFTER_COPY = `
  select s.stream, l.seq::text as seq, pg_catalog.encode(l.hash, 'hex') as hash
    from pg_catalog.unnest($1::text[]) with ordinality s(stream, n)
   cross join lateral chainlog.last_event(s.stream) l
   order by s.n`;

/** Says which of the caller's events a COPY error is about ("COPY events, line 12"). */
function withEventIndex(e: ChainlogError, order: Uint32Array): ChainlogError {
  const where = (e.cause as { where?: string } | undefined)?.where;
  const line = where ? /COPY events, line (\d+)/.exec(where)?.[1] : undefined;
  if (!line) return e;
  const index = order[Number(line) - 1];
  if (index === undefined) return e;
  e.message = `appendMany(): events[${index}]: ${e.message}`;
  return e;
}

// ---------------------------------------------------------------------------------------------------
// search: keyset pagination on (recorded_at, id), newest first

const MAX_LIMIT = 1000;

function encodeCursor(recordedAt: string, id: string): string {
  return Buffer.from(JSON.stringify([recordedAt, id])).toString('base64url');
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    // As encodeCursor() writes them: a real UTC time to the microsecond, and an id PostgreSQL's bigint
    // holds. Anything else would reach the database and fail there (22008, 22003).
    if (
      Array.isArray(value) && value.length === 2 &&
      typeof value[0] === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z$/.test(value[0]) &&
      new Date(value[0]).toISOString().slice(0, 19) === value[0].slice(0, 19) &&
      typeof value[1] === 'string' && /^\d{1,19}$/.test(value[1]) && BigInt(value[1]) <= 9223372036854775807n
    ) {
      return [value[0], value[1]];
    }
  } catch {
    // fall through
  }
  throw invalidArgument('search(): the cursor is not one search() returned.', 'Pass nextCursor from the previous page unchanged, or leave cursor out to start from the newest event.');
}

/** The SQL search() runs: exported so tests can EXPLAIN it. */
export function buildSearchQuery(query: SearchQuery = {}): { text: string; values: unknown[]; limit: number } {
  const limit = query.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw invalidArgument(`search(): limit must be an integer from 1 to ${MAX_LIMIT}, not ${limit}.`);
  }
  const where: string[] = [];
  const values: unknown[] = [];
  const param = (value: unknown, type: string) => {
    values.push(value);
    return `$${values.length}::${type}`;
  };
  const equals: Array<[keyof SearchQuery, string]> = [
    ['stream', 'stream'], ['eventType', 'event_type'], ['action', 'action'], ['actor', 'actor'],
    ['resourceType', 'resource_type'], ['resourceId', 'resource_id'],
  ];
  let filters = 0;
  for (const [key, column] of equals) {
    const value = query[key];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw invalidArgument(`search(): ${key} must be a string.`);
    where.push(`e.${column} = ${param(value, 'text')}`);
    // resourceId narrows resourceType within one index: the pair counts as one filter.
    if (key !== 'resourceId' || query.resourceType === undefined) filters++;
  }
  if (query.result !== undefined) {
    if (query.result !== 'success' && query.result !== 'failure') {
      throw invalidArgument(`search(): result must be 'success' or 'failure', not ${JSON.stringify(query.result)}.`);
    }
    // A literal, not a parameter, so a generic plan can still use the partial index on failures.
    where.push(`e.result = '${query.result}'`);
    filters++;
  }
  const from = searchTimeParam(query.from, 'from');
  if (from !== null) where.push(`e.recorded_at >= ${param(from, 'timestamptz')}`);
  const to = searchTimeParam(query.to, 'to');
  if (to !== null) where.push(`e.recorded_at < ${param(to, 'timestamptz')}`);
  if (query.cursor !== undefined && query.cursor !== null && query.cursor !== '') {
    const [recordedAt, id] = decodeCursor(query.cursor);
    where.push(`(e.recorded_at, e.id) < (${param(recordedAt, 'timestamptz')}, ${param(id, 'bigint')})`);
  }
  // One row more than asked tells whether there is a next page.
  const order = 'order by e.recorded_at desc, e.id desc';
  const page = `from chainlog.events e
   ${where.length ? `where ${where.join('\n     and ')}` : ''}
   ${order}
   limit ${limit + 1}`;
  // Two filters or more: the index of one finds candidates, the others filter them. Picking the
  // page's ids first lets that run on the index alone where it covers the other filter (the actor
  // index carries event_type and action), instead of reading every candidate's row from the table;
  // only the page's rows are read, by primary key.
  const text = filters < 2
    ? `select ${EVENT_COLUMNS}
    ${page}`
    : `select ${EVENT_COLUMNS}
    from chainlog.events e
   where e.id in (select e.id ${page})
   ${order}`;
  return { text, values, limit };
}

// ---------------------------------------------------------------------------------------------------
// The handle

const VERIFY = `
  select v.ok, v.checked::text as checked, v.first_bad_seq::text as first_bad_seq, v.problem, v.detail
    from chainlog.verify($1, $2::bigint) v`;
// The hash at the checkpoint is read in the same statement, so in the same snapshot as verify()'s.
const VERIFY_WITH_CHECKPOINT = `
  select v.ok, v.checked::text as checked, v.first_bad_seq::text as first_bad_seq, v.problem, v.detail,
         (select pg_catalog.encode(e.hash, 'hex') from chainlog.events e
           where e.stream = $1 and e.seq = $3 order by e.id limit 1) as checkpoint_hash
    from chainlog.verify($1, $2::bigint) v`;
const VERIFY_ALL = `
  select v.stream, v.ok, v.checked::text as checked, v.first_bad_seq::text as first_bad_seq, v.problem, v.detail
    from chainlog.verify_all() v`;

interface VerifyRow {
  stream?: string;
  ok: boolean;
  checked: string;
  first_bad_seq: string | null;
  problem: string | null;
  detail: string | null;
}

const mapVerify = (stream: string, r: VerifyRow): VerifyReport => ({
  stream,
  ok: r.ok,
  checked: Number(r.checked),
  firstBadSeq: r.first_bad_seq,
  problem: r.problem,
  detail: r.detail,
});

const CONTEXT_SETTINGS: Array<[keyof EventContext, string]> = [
  ['actor', 'chainlog.actor'],
  ['actorType', 'chainlog.actor_type'],
  ['sourceIp', 'chainlog.source_ip'],
  ['requestId', 'chainlog.request_id'],
];

class ChainlogHandle implements Chainlog {
  constructor(
    readonly db: Db,
    private readonly onClose: () => Promise<void>,
  ) {}

  async append(event: NewEvent, options: CallOptions = {}): Promise<AppendResult> {
    // Named: prepared once per connection, then only bound and executed.
    const { rows } = await run<AppendResult>(options.db ?? this.db, {
      name: 'chainlog_append_v1',
      text: APPEND,
      values: appendValues(event),
    });
    return rows[0]!;
  }

  async appendMany(events: readonly NewEvent[], options: CallOptions = {}): Promise<AppendManyResult> {
    if (!Array.isArray(events)) throw invalidArgument('appendMany() needs an array of events.');
    if (events.length === 0) return { count: 0, heads: [] };
    const { order, streams } = streamOrder(events);
    return inTransaction(options.db ?? this.db, async (client) => {
      const copy = client.query(copyStreams.from(COPY_EVENTS));
      try {
        await pipeline(Readable.from(copyChunks(events, order)), copy);
      } catch (e) {
        // A server error ends the COPY cleanly; anything else (a bad value in our generator, a lost
        // socket) may leave the session mid-COPY.
        if (!/^[0-9A-Z]{5}$/.test(String((e as { code?: unknown }).code))) brokenSessions.add(client);
        throw withEventIndex(toChainlogError(e), order);
      }
      const { rows } = await run<StreamHead>(client, HEADS_AFTER_COPY, [streams]);
      return { count: Number(copy.rowCount), heads: rows };
    });
  }

  async withContext<T>(context: EventContext, fn: (tx: Chainlog) => Promise<T>, options: CallOptions = {}): Promise<T> {
    const given = CONTEXT_SETTINGS.filter(([key]) => context[key] !== undefined && context[key] !== null);
    return inTransaction(options.db ?? this.db, async (client, joined) => {
      const names = given.map(([, setting]) => setting);
      // Inside the caller's transaction, put back what was set before, so the context ends with fn.
      const previous = joined
        ? (await run<{ v: string[] }>(client, `select array(select coalesce(pg_catalog.current_setting(n, true), '') from pg_catalog.unnest($1::text[]) n) as v`, [names])).rows[0]!.v
        : [];
      if (names.length) {
        await run(client, `select pg_catalog.set_config(n, v, true) from rows from (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) s(n, v)`, [
          names,
          given.map(([key]) => String(context[key])),
        ]);
      }
      try {
        return await fn(new ChainlogHandle(client, async () => {}));
      } finally {
        if (joined && names.length && client.getTransactionStatus?.() !== 'E') {
          await run(client, `select pg_catalog.set_config(n, v, true) from rows from (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) s(n, v)`, [names, previous]);
        }
      }
    });
  }

  async search(query: SearchQuery = {}, options: CallOptions = {}): Promise<SearchPage> {
    const { text, values, limit } = buildSearchQuery(query);
    const { rows } = await run<EventRow>(options.db ?? this.db, text, values);
    const events = rows.slice(0, limit).map(mapEvent);
    const last = events[events.length - 1];
    return { events, nextCursor: rows.length > limit && last ? encodeCursor(last.recordedAt, last.id) : null };
  }

  async get(id: string | number | bigint, options: CallOptions = {}): Promise<ChainlogEvent | null> {
    const key = bigintParam(id, 'id');
    const { rows } = await run<EventRow>(options.db ?? this.db, {
      name: 'chainlog_get_v1',
      text: `select ${EVENT_COLUMNS} from chainlog.events e where e.id = $1::bigint`,
      values: [key],
    });
    return rows[0] ? mapEvent(rows[0]) : null;
  }

  async verify(args: VerifyArgs, options: CallOptions = {}): Promise<VerifyReport> {
    if (typeof args?.stream !== 'string' || args.stream === '') {
      throw invalidArgument('verify() needs { stream }.', 'streams() lists them; verifyAll() checks every stream.');
    }
    const upToSeq = bigintParam(args.upToSeq, 'upToSeq');
    if (args.checkpoint === undefined) {
      const { rows } = await run<VerifyRow>(options.db ?? this.db, VERIFY, [args.stream, upToSeq]);
      return mapVerify(args.stream, rows[0]!);
    }
    const checkpoint = checkpointWithin(args.checkpoint, seqNumber(args.upToSeq, 'upToSeq'));
    let rows: Array<VerifyRow & { checkpoint_hash: string | null }>;
    try {
      ({ rows } = await run<VerifyRow & { checkpoint_hash: string | null }>(options.db ?? this.db, VERIFY_WITH_CHECKPOINT, [
        args.stream, upToSeq, checkpoint.seq,
      ]));
    } catch (e) {
      if (!(e instanceof ChainlogUnknownStreamError)) throw e;
      const removed = removedStream(checkpoint);
      return { stream: args.stream, ...removed, firstBadSeq: String(removed.firstBadSeq) };
    }
    const report = mapVerify(args.stream, rows[0]!);
    // Verified intact, report.checked is the last seq: the chain runs from seq 1 without a gap.
    const v = applyCheckpoint({ ...report, firstBadSeq: report.firstBadSeq === null ? null : Number(report.firstBadSeq) },
      checkpoint, rows[0]!.checkpoint_hash, report.checked);
    return { ...v, firstBadSeq: v.firstBadSeq === null ? null : String(v.firstBadSeq) };
  }

  async verifyAll(options: CallOptions = {}): Promise<VerifyReport[]> {
    const { rows } = await run<VerifyRow>(options.db ?? this.db, VERIFY_ALL);
    return rows.map((r) => mapVerify(r.stream!, r));
  }

  async verifyOffline(args: VerifyOfflineArgs, options: CallOptions = {}): Promise<VerifyReport> {
    try {
      const report = await verifyOfflineImpl({
        db: options.db ?? this.db,
        stream: args.stream,
        upToSeq: seqNumber(args.upToSeq, 'upToSeq'),
        checkpoint: args.checkpoint,
        onProgress: args.onProgress,
        workers: args.workers,
      });
      return { ...report, firstBadSeq: report.firstBadSeq === null ? null : String(report.firstBadSeq) };
    } catch (e) {
      throw toChainlogError(e);
    }
  }

  async export(args: ExportArgs, options: CallOptions = {}): Promise<ExportSummary> {
    // Checked as search() checks them: a string goes to PostgreSQL as written (microseconds kept;
    // without an offset it is UTC, the export session's pinned TimeZone), which alone decides what is a
    // time. JavaScript's Date would refuse some that search() takes (+02, 23:59:60).
    const time = (value: Date | string | undefined, name: string) => timestampParam(value, name) ?? undefined;
    try {
      const result = await exportEvents({
        db: options.db ?? this.db,
        stream: args.stream,
        fromSeq: seqNumber(args.fromSeq, 'fromSeq'),
        toSeq: seqNumber(args.toSeq, 'toSeq'),
        from: time(args.from, 'from'),
        to: time(args.to, 'to'),
        format: args.format,
        output: args.output,
        onProgress: args.onProgress,
      });
      const seq = (n: number | null) => (n === null ? null : String(n));
      return {
        rows: Number(result.rows),
        bytes: result.bytes,
        headSeq: String(result.headSeq),
        headHash: result.headHash,
        firstSeq: seq(result.firstSeq),
        lastSeq: seq(result.lastSeq),
        lastHash: result.lastHash,
      };
    } catch (e) {
      throw toChainlogError(e);
    }
  }

  async streams(options: CallOptions = {}): Promise<StreamInfo[]> {
    const { rows } = await run<StreamInfo>(
      options.db ?? this.db,
      `select s.stream, s.head_seq::text as "headSeq", pg_catalog.encode(s.head_hash, 'hex') as "headHash",
              pg_catalog.to_char(s.created_at at time zone 'UTC', ${UTC_MICROS}) as "createdAt",
              pg_catalog.to_char(s.last_appended_at at time zone 'UTC', ${UTC_MICROS}) as "lastAppendedAt"
         from chainlog.streams s
        order by s.stream`,
    );
    return rows;
  }

  close(): Promise<void> {
    return this.onClose();
  }
}

/**
 * Opens chainlog on a database that has it installed (migrate()).
 *
 * - `{ pool }` or `{ client }`: use it; close() leaves it open.
 * - otherwise a pool on `connectionString`, default DATABASE_URL (and PG* variables); close() ends it.
 */
export function createChainlog(options: ChainlogOptions = {}): Chainlog {
  if (options.pool && options.client) throw invalidArgument('createChainlog(): pass pool or client, not both.');
  const given = options.pool ?? options.client;
  if (given) return new ChainlogHandle(given, async () => {});
  const pool = new pg.Pool({ connectionString: options.connectionString ?? process.env.DATABASE_URL });
  // An idle client's error (server restart) must not crash the process; the next query reports it.
  pool.on('error', () => {});
  let closed: Promise<void> | undefined;
  return new ChainlogHandle(pool, () => (closed ??= pool.end()));
}
