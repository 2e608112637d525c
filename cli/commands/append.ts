// chainlog append: append one event from options, or many from an NDJSON file (one event per line,
// in the TypeScript API's shape: {"eventType": ..., "action": ..., "stream": ...}) through appendMany().
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Argv, CommandModule } from 'yargs';
import type { ActorType, EventResult, NewEvent } from '../../src/client.js';
import { invalidArgument } from '../../src/errors.js';
import { EXIT, handler, type GlobalArgs } from '../command.js';
import { openDatabase } from '../connection.js';
import { formatCount, formatRecord, progress, writeJson, writeLine, writeTable, type Output } from '../output.js';

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

function parseJsonOption(name: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw invalidArgument(`--${name} is not valid JSON: ${text}`, `Quote it for the shell, e.g. --${name} '{"amount": 42}'.`);
  }
}

/** Reads NDJSON events from a file, or from stdin for "-". */
export async function readEvents(file: string): Promise<NewEvent[]> {
  const input = file === '-' ? process.stdin : createReadStream(file);
  const events: NewEvent[] = [];
  let n = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++;
    if (line.trim() === '') continue;
    try {
      events.push(JSON.parse(line) as NewEvent);
    } catch {
      throw invalidArgument(`${file}, line ${n}: not a JSON object.`, 'Write one event per line, e.g. {"eventType": "USER_LOGIN", "action": "LOGIN", "stream": "acme"}.');
    }
  }
  return events;
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
        payload: parseJsonOption('payload', args.payload),
        before: parseJsonOption('before', args.before),
        after: parseJsonOption('after', args.after),
        occurredAt: args.occurredAt,
        sourceIp: args.sourceIp,
        requestId: args.requestId,
      };
  const batch = args.file ? await readEvents(args.file) : undefined;
  // In a file, the stream option is the default for lines that name none.
  if (batch && args.stream) for (const e of batch) e.stream ??= args.stream;

  const db = await openDatabase(args, out);
  try {
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
    if (result.count === 0 && !out.json) writeLine(out.stderr, `${args.file} holds no events (${formatCount(0)} appended).`);
    return EXIT.OK;
  } finally {
    await db.close();
  }
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
      .option('payload', { type: 'string', describe: 'JSON' })
      .option('before', { type: 'string', describe: 'JSON: the resource before' })
      .option('after', { type: 'string', describe: 'JSON: the resource after' })
      .option('occurred-at', { type: 'string', describe: 'ISO 8601 time the event happened' })
      .option('source-ip', { type: 'string' })
      .option('request-id', { type: 'string' })
      .option('file', { alias: 'f', type: 'string', describe: 'NDJSON file of events ("-" for stdin), appended in one transaction' })
      .check((a) => {
        if (a.file) {
          if (a.eventType || a.action) throw new Error('Give either --file or --event-type/--action, not both.');
          return true;
        }
        if (!a.eventType || !a.action) throw new Error('Missing --event-type and --action (or --file).');
        return true;
      })
      .example("$0 append -s acme -t INVOICE_PAID -a UPDATE --actor alice --resource-type invoice --resource-id 42 --payload '{\"amount\": 120}'", '')
      .example('$0 append --file events.ndjson', '') as unknown as Argv<AppendArgs>,
  handler: handler(runAppend),
};
