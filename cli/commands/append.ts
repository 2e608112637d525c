// chainlog append: append one event from options, or many from an NDJSON file (cli/event-file.ts)
// through appendMany(), in one transaction. With a file, the event options are every line's defaults.
import type { Argv, CommandModule } from 'yargs';
import type { ActorType, EventResult, NewEvent } from '../../src/client.js';
import { invalidArgument } from '../../src/errors.js';
import { EXIT, handler, type GlobalArgs } from '../command.js';
import { withDatabase } from '../connection.js';
import { EVENT_KEYS, JSON_FIELDS, readEvents, withDefaults } from '../event-file.js';
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

/**
 * The options that describe an event, except --event-type and --action: the event's fields, or with
 * --file the default of each line that leaves the field out (as for --stream). None is ignored.
 */
function eventOptions(args: AppendArgs): Partial<NewEvent> {
  const fields: Partial<NewEvent> = {
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
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

export async function runAppend(args: AppendArgs, out: Output): Promise<number> {
  const options = eventOptions(args);
  const single: NewEvent | undefined = args.file ? undefined : { eventType: args.eventType!, action: args.action!, ...options };
  // Every line is read and checked before the database is opened: a bad line appends nothing.
  const batch = args.file ? (await readEvents(args.file)).map((e) => withDefaults(e, options)) : undefined;
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
      .option('file', {
        alias: 'f',
        type: 'string',
        describe: 'NDJSON file of events ("-" for stdin), appended in one transaction. The event options (all but --event-type and --action) fill in each line\'s fields it leaves out (absent or null)',
      })
      .check((a) => {
        if (a.file) {
          if (a.eventType || a.action) throw invalidArgument('Give either --file or --event-type/--action, not both: each line of the file names its own eventType and action.');
          return true;
        }
        const missing = [a.eventType ? null : '--event-type', a.action ? null : '--action'].filter(Boolean);
        if (missing.length) throw invalidArgument(`Missing ${missing.join(' and ')} (or give --file).`);
        return true;
      })
      .example("$0 append -s acme -t INVOICE_PAID -a UPDATE --actor alice --resource-type invoice --resource-id 42 --payload '{\"amount\": 120}'", '')
      .epilogue(`A --file line is an event as the TypeScript API takes it, with the keys ${EVENT_KEYS.join(', ')}; ` +
        'a text field may be a number, stored as written. A line with any other key or a value of the wrong type is refused, naming its line, and nothing is appended.')
      .example('$0 append --file events.ndjson', '')
      .example('$0 append --file logins.ndjson -s acme --actor-type user --source-ip 203.0.113.7', 'Lines that name no stream, actor type or address get these') as unknown as Argv<AppendArgs>,
  handler: handler(runAppend),
};
