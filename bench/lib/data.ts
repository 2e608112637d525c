// Realistic audit events, made in Node for client-side workloads. bench.gen_events() in
// bench/sql/setup.sql makes the same events in SQL for server-side loads: keep the two in step.
import { createHash } from 'node:crypto';

/** The columns a client writes; chainlog assigns the rest (seq, recorded_at, format_version, hashes). */
export const CONTENT_COLUMNS = [
  'stream', 'occurred_at', 'actor', 'actor_type', 'event_type', 'action', 'result',
  'resource_type', 'resource_id', 'source_ip', 'request_id', 'payload', 'before', 'after',
] as const;

/** What the plain baseline's client writes on top: real-looking chain values (recorded_at and format_version default). */
export const PLAIN_EXTRA_COLUMNS = ['seq', 'data_digest', 'prev_hash', 'hash'] as const;
/** What the hash-only baseline's client writes on top: its trigger computes the digest and hash. */
export const HASHED_EXTRA_COLUMNS = ['seq', 'prev_hash'] as const;

export type Target = 'chainlog' | 'plain' | 'hashed';

export const TABLE: Record<Target, string> = {
  chainlog: 'chainlog.events',
  plain: 'bench.plain',
  hashed: 'bench.hashed',
};

export function columnsFor(target: Target): string[] {
  if (target === 'plain') return [...CONTENT_COLUMNS, ...PLAIN_EXTRA_COLUMNS];
  if (target === 'hashed') return [...CONTENT_COLUMNS, ...HASHED_EXTRA_COLUMNS];
  return [...CONTENT_COLUMNS];
}

const KINDS: ReadonlyArray<readonly [eventType: string, action: string, resourceType: string]> = [
  ['INVOICE_CREATED', 'CREATE', 'invoice'],
  ['INVOICE_UPDATED', 'UPDATE', 'invoice'],
  ['INVOICE_PAID', 'UPDATE', 'invoice'],
  ['USER_LOGIN', 'LOGIN', 'session'],
  ['USER_LOGOUT', 'LOGOUT', 'session'],
  ['DOCUMENT_VIEWED', 'READ', 'document'],
  ['DOCUMENT_DELETED', 'DELETE', 'document'],
  ['ROLE_GRANTED', 'UPDATE', 'role'],
  ['API_KEY_CREATED', 'CREATE', 'api_key'],
  ['WORKFLOW_EXECUTED', 'EXECUTE', 'workflow'],
  ['SETTINGS_CHANGED', 'UPDATE', 'settings'],
  ['EXPORT_REQUESTED', 'EXECUTE', 'export'],
];

export interface BenchEvent {
  stream: string;
  occurredAt: string;
  actor: string;
  actorType: 'user' | 'api_key' | 'service';
  eventType: string;
  action: string;
  result: 'success' | 'failure';
  resourceType: string;
  resourceId: string;
  sourceIp: string;
  requestId: string;
  payload: Record<string, unknown>;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
}

const EPOCH_MS = Date.UTC(2025, 0, 1);
const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** Event number g (g >= 1, < 2^31) of a stream; the same values bench.gen_events() computes. */
export function makeEvent(stream: string, g: number): BenchEvent {
  // Knuth's multiplicative hash: spreads consecutive g over actors, kinds and resources.
  const h = Math.imul(g, 2654435761) >>> 0;
  const [eventType, action, resourceType] = KINDS[Math.floor(h / 256) % KINDS.length]!;
  const amount = h % 100000;
  const update = action === 'UPDATE';
  return {
    stream,
    occurredAt: new Date(EPOCH_MS + g * 37).toISOString(),
    actor: `user-${pad(h % 5000, 4)}@example.com`,
    actorType: h % 10 < 7 ? 'user' : h % 10 < 9 ? 'api_key' : 'service',
    eventType,
    action,
    result: h % 50 === 0 ? 'failure' : 'success',
    resourceType,
    resourceId: `${resourceType}-${pad(h % 100000, 6)}`,
    sourceIp: `203.0.113.${h % 250}`,
    requestId: `req-${h.toString(16).padStart(8, '0')}-${g}`,
    payload: {
      amount,
      currency: 'EUR',
      reason: 'monthly billing run',
      client: { app: 'web', version: '4.18.2' },
      tags: ['billing', 'q3'],
    },
    before: update ? { status: 'open', amount } : null,
    after: update ? { status: 'paid', amount } : null,
  };
}

/** The event's values in CONTENT_COLUMNS order, as query parameters. */
export function contentValues(e: BenchEvent): Array<string | null> {
  return [
    e.stream, e.occurredAt, e.actor, e.actorType, e.eventType, e.action, e.result,
    e.resourceType, e.resourceId, e.sourceIp, e.requestId,
    JSON.stringify(e.payload), e.before && JSON.stringify(e.before), e.after && JSON.stringify(e.after),
  ];
}

// Real SHA-256 values for the baselines' hash columns. A small pool is enough: nothing indexes them,
// and what matters is that the baseline rows are exactly as wide as chainlog's.
const HASH_POOL: Buffer[] = Array.from({ length: 1024 }, (_, i) => createHash('sha256').update(`bench ${i}`).digest());
const HASH_POOL_HEX = HASH_POOL.map((b) => `\\\\x${b.toString('hex')}`);

export function poolHash(i: number): Buffer {
  return HASH_POOL[i % HASH_POOL.length]!;
}

/** Query parameters for `target`, in columnsFor(target) order. `seq` is what the baselines store. */
export function rowValues(target: Target, e: BenchEvent, seq: number): unknown[] {
  const content = contentValues(e);
  if (target === 'plain') return [...content, seq, poolHash(seq), poolHash(seq + 1), poolHash(seq + 2)];
  if (target === 'hashed') return [...content, seq, poolHash(seq + 1)];
  return content;
}

const COPY_ESCAPE = /[\\\t\n\r]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const copyField = (v: string | null) => (v === null ? '\\N' : v.replace(COPY_ESCAPE, (c) => COPY_ESCAPES[c]!));

/** One line of COPY text format for `target`, columns in columnsFor(target) order. */
export function copyLine(target: Target, e: BenchEvent, seq: number): string {
  let line = contentValues(e).map(copyField).join('\t');
  if (target === 'plain') {
    line += `\t${seq}\t${HASH_POOL_HEX[seq % 1024]}\t${HASH_POOL_HEX[(seq + 1) % 1024]}\t${HASH_POOL_HEX[(seq + 2) % 1024]}`;
  } else if (target === 'hashed') {
    line += `\t${seq}\t${HASH_POOL_HEX[(seq + 1) % 1024]}`;
  }
  return line + '\n';
}

/**
 * COPY data for events first..first+count-1 of a stream, in chunks of ~1000 lines. Generated while
 * the COPY runs (Node makes lines on one core while the server inserts on the other), so no variant
 * needs hundreds of MB of buffered input; the cost is the same for every variant.
 */
export function* copyChunks(target: Target, stream: string, first: number, count: number, seqBase = 0): Generator<string> {
  const end = first + count;
  for (let g = first; g < end; ) {
    const stop = Math.min(end, g + 1000);
    let chunk = '';
    for (; g < stop; g++) chunk += copyLine(target, makeEvent(stream, g), seqBase + g);
    yield chunk;
  }
}

/**
 * How many bytes chainlog hashes per event, on the bench's own events (bench.src): the canonical
 * encoding and the data digest's input. FIELD-NOTES' figures are for about 350 bytes.
 */
export const EVENT_SHAPE_SQL = `
  select avg(octet_length(chainlog.canonical_bytes(1::smallint, s.prev_hash, s.n, clock_timestamp(), s.data_digest,
               s.stream, s.occurred_at, s.actor, s.actor_type, s.event_type, s.action, s.result, s.resource_type,
               s.resource_id, s.source_ip, s.request_id)))::float8 as "canonicalBytes",
         avg(octet_length(convert_to(coalesce(s.payload::text, '') || E'\\n' || coalesce(s.before::text, '') || E'\\n'
               || coalesce(s.after::text, ''), 'UTF8')))::float8 as "digestInputBytes"
    from bench.src s`;
