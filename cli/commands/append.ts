// chainlog append: append one event from options, or many from an NDJSON file (one event per line,
// in the TypeScript API's shape: {"eventType": ..., "action": ..., "stream": ...}) through appendMany().
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Argv, CommandModule } from 'yargs';
import type { ActorType, EventResult, NewEvent } from '../../src/client.js';
import { isLosslessNumber, parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';
import { invalidArgument } from '../../src/errors.js';
import { EXIT, handler, type GlobalArgs } from '../command.js';
import { withDatabase } from '../connection.js';
import { formatRecord, printable, progress, writeJson, writeLine, writeTable, type Output } from '../output.js';

export interface AppendArgs extends GlobalArgs {
  stream?: string;
  eventType?: string;
  action?: string;
  actor?: string;
  actorType?: ActorType;
  result?: EventResult;
  resourceType?: string;
  resourceId?: string;
  payload?: string;
  before?: string;
  after?: string;
  occurredAt?: string;
  sourceIp?: string;
  requestId?: string;
  file?: string;
}

/**
 * A JSON option (--payload, --before, --after) as text for PostgreSQL to parse into the jsonb, so its
 * numbers keep every digit; JSON.parse() only checks it, for a clear message. JSON null is SQL NULL, as
 * in the API.
 */
function jsonOption(name: string, text: string | undefined): { json?: string; isNull: boolean } {
  if (text === undefined) return { isNull: false };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`--${name} is not valid JSON (${(e as Error).message}): ${text}`, `Quote it for the shell, e.g. --${name} '{"amount": 42}'.`);
  }
  return value === null ? { isNull: true } : { json: text.trim(), isNull: false };
}

const JSON_FIELDS = [
  ['payload', 'payloadJson'],
  ['before', 'beforeJson'],
  ['after', 'afterJson'],
] as const;

/**
 * One NDJSON line as an event. payload, before and after are passed on as JSON text (payloadJson, ...),
 * so that PostgreSQL stores their numbers exactly as written: lossless-json keeps every number's digits
 * (JSON.parse would round 12345678901234567890 and drop the zeros of 1.0), and it refuses a key given
 * twice with different values, which JSON.parse would silently resolve to the last.
 */
export function parseEventLine(line: string, where: string): NewEvent {
  let value: unknown;
  try {
    value = parseLossless(line);
  } catch (e) {
    throw invalidArgument(`${where}: not valid JSON (${(e as Error).message}).`, 'Write one event per line, e.g. {"eventType": "USER_LOGIN", "action": "LOGIN", "stream": "acme"}.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidArgument(`${where}: not a JSON object.`, 'Write one event per line, e.g. {"eventType": "USER_LOGIN", "action": "LOGIN", "stream": "acme"}.');
  }
  const event = value as NewEvent & Record<string, unknown>;
  for (const [key, textKey] of JSON_FIELDS) {
    // JSON null stays null (SQL NULL); a line that gives the text itself keeps it.
    if (event[key] === null || event[key] === undefined || event[textKey] !== undefined) continue;
    event[textKey] = stringifyLossless(event[key]);
    delete event[key];
  }
  // Any other member that is a number reaches the client as JSON.parse would give it.
  for (const [key, v] of Object.entries(event)) if (isLosslessNumber(v)) event[key] = Number(v.value);
  return event;
}

/** Reads NDJSON events from a file, or from stdin for "-". */
export async function readEvents(file: string): Promise<NewEvent[]> {
  const input = file === '-' ? process.stdin : createReadStream(file);
  const events: NewEvent[] = [];
  let n = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++;
    if (line.trim() === '') continue;
    events.push(parseEventLine(line, `${file === '-' ? 'stdin' : file}, line ${n}`));
  }
  return events;
}

/** --payload, --before and --after as the event's JSON text fields. */
function jsonFields(args: AppendArgs): Partial<NewEvent> {
  const fields: Partial<NewEvent> = {};
  for (const [key, textKey] of JSON_FIELDS) {
    const { json, isNull } = jsonOption(key, args[key]);
    if (json !== undefined) fields[textKey] = json;
    else if (isNull) fields[key] = null;
  }
  return fields;
}

export async function runAppend(args: AppendArgs, out: Output): Promise<number> {
  const single: NewEvent | undefined = args.file
    ? undefined
    : {
        eventType: args.eventType!,
        action: args.action!,
        stream: args.stream,
        actor: args.actor,
        actorType: args.actorType,
        result: args.result,
        resourceType: args.resourceType,
        resourceId: args.resourceId,
        ...jsonFields(args),
        occurredAt: args.occurredAt,
        sourceIp: args.sourceIp,
        requestId: args.requestId,
      };
  const batch = args.file ? await readEvents(args.file) : undefined;
  // In a file, the stream option is the default for lines that name none.
  if (batch && args.stream) for (const e of batch) e.stream ??= args.stream;
  if (batch?.length === 0) {
    // Nothing to write: no database to open, no table of heads to print.
    if (out.json) writeJson(out, { count: 0, heads: [] });
    else writeLine(out.stderr, `No events in ${args.file === '-' ? 'stdin' : printable(args.file!)}: nothing appended.`);
    return EXIT.OK;
  }

  return withDatabase(args, out, async (db) => {
    if (single) {
      const appended = await db.chainlog.append(single);
      if (out.json) writeJson(out, appended);
      else writeLine(out.stdout, formatRecord([['id', appended.id], ['stream', appended.stream], ['seq', appended.seq], ['hash', appended.hash]]));
      return EXIT.OK;
    }
    const timer = progress(out, 'appending');
    const result = await db.chainlog.appendMany(batch!);
    const summary = timer.done(result.count);
    if (out.json) {
      writeJson(out, result);
    } else {
      writeLine(out.stdout, `Appended ${summary}.`);
      writeTable(out, result.heads, [
        { header: 'STREAM', value: (h) => h.stream },
        { header: 'HEAD SEQ', value: (h) => h.seq, right: true },
        { header: 'HEAD HASH', value: (h) => h.hash },
      ]);
    }
    return EXIT.OK;
  });
}

export const appendCommand: CommandModule<GlobalArgs, AppendArgs> = {
  command: 'append',
  describe: 'Append one event (from options) or many (--file events.ndjson)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('stream', { alias: 's', type: 'string', describe: "The chain to append to (default 'default')" })
      .option('event-type', { alias: ['t', 'type'], type: 'string', describe: 'What happened, e.g. INVOICE_PAID' })
      .option('action', { alias: 'a', type: 'string', describe: 'The verb: CREATE, UPDATE, DELETE, EXECUTE, LOGIN...' })
      .option('actor', { type: 'string', describe: 'Who did it (default: the database role)' })
      .option('actor-type', { type: 'string', choices: ['user', 'api_key', 'service', 'system'] as const })
      .option('result', { type: 'string', choices: ['success', 'failure'] as const, describe: "Default 'success'" })
      .option('resource-type', { type: 'string', describe: 'What it was done to, e.g. invoice' })
      .option('resource-id', { type: 'string' })
      .option('payload', { type: 'string', describe: 'JSON, stored as written (numbers keep every digit)' })
      .option('before', { type: 'string', describe: 'JSON: the resource before' })
      .option('after', { type: 'string', describe: 'JSON: the resource after' })
      .option('occurred-at', { type: 'string', describe: 'ISO 8601 time the event happened' })
      .option('source-ip', { type: 'string' })
      .option('request-id', { type: 'string' })
      .option('file', { alias: 'f', type: 'string', describe: 'NDJSON file of events ("-" for stdin), appended in one transaction' })
      .check((a) => {
        if (a.file) {
          if (a.eventType || a.action) throw invalidArgument('Give either --file or --event-type/--action, not both.');
          return true;
        }
        const missing = [a.eventType ? null : '--event-type', a.action ? null : '--action'].filter(Boolean);
        if (missing.length) throw invalidArgument(`Missing ${missing.join(' and ')} (or give --file).`);
        return true;
      })
      .example("$0 append -s acme -t INVOICE_PAID -a UPDATE --actor alice --resource-type invoice --resource-id 42 --payload '{\"amount\": 120}'", '')
      .example('$0 append --file events.ndjson', '') as unknown as Argv<AppendArgs>,
  handler: handler(runAppend),
};
