// chainlog search: find events by stream, type, action, result, resource, actor and time, newest first.
import type { Argv, CommandModule } from 'yargs';
import type { SearchQuery } from '../../src/client.js';
import { EXIT, handler, integerOption, TIME_HELP, timeOption, type GlobalArgs } from '../command.js';
import { withDatabase } from '../connection.js';
import { dim, eventForJson, writeJson, writeLine, writeTable, type Output } from '../output.js';

/** The search options as yargs parses them: SearchQuery's filters; times and the limit as typed. */
export interface SearchArgs extends GlobalArgs, Omit<SearchQuery, 'from' | 'to' | 'limit'> {
  from?: string;
  to?: string;
  limit?: string;
}

const DEFAULT_LIMIT = 20;

export async function runSearch(args: SearchArgs, out: Output): Promise<number> {
  const query: SearchQuery = {
    stream: args.stream,
    eventType: args.eventType,
    action: args.action,
    result: args.result,
    resourceType: args.resourceType,
    resourceId: args.resourceId,
    actor: args.actor,
    from: timeOption('from', args.from),
    to: timeOption('to', args.to),
    limit: integerOption('limit', args.limit, 1, 1000) ?? DEFAULT_LIMIT,
    cursor: args.cursor,
  };
  return withDatabase(args, out, async (db) => {
    const page = await db.chainlog.search(query);
    if (out.json) {
      writeJson(out, { events: page.events.map(eventForJson), nextCursor: page.nextCursor });
      return EXIT.OK;
    }
    if (page.events.length === 0) {
      writeLine(out.stdout, 'No events match.');
      return EXIT.OK;
    }
    writeTable(out, page.events, [
      { header: 'ID', value: (e) => e.id, right: true },
      { header: 'RECORDED AT', value: (e) => e.recordedAt.replace('T', ' ').slice(0, 23) },
      { header: 'STREAM', value: (e) => e.stream },
      { header: 'SEQ', value: (e) => e.seq, right: true },
      { header: 'ACTOR', value: (e) => e.actor },
      { header: 'EVENT TYPE', value: (e) => e.eventType },
      { header: 'ACTION', value: (e) => e.action },
      { header: 'RESULT', value: (e) => e.result },
      { header: 'RESOURCE', value: (e) => (e.resourceType ? `${e.resourceType}${e.resourceId ? `:${e.resourceId}` : ''}` : ''), flex: true },
    ]);
    if (page.nextCursor) writeLine(out.stdout, dim(out.stdout, `\nMore events: add --cursor ${page.nextCursor}`));
    return EXIT.OK;
  });
}

export const searchCommand: CommandModule<GlobalArgs, SearchArgs> = {
  command: 'search',
  describe: 'Find events, newest first (filters combine with AND)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('stream', { alias: 's', type: 'string' })
      .option('event-type', { alias: ['t', 'type'], type: 'string' })
      .option('action', { alias: 'a', type: 'string' })
      .option('result', { type: 'string', choices: ['success', 'failure'] as const })
      .option('resource-type', { type: 'string' })
      .option('resource-id', { type: 'string' })
      .option('actor', { type: 'string' })
      .option('from', { type: 'string', describe: `Recorded at or after this time (${TIME_HELP})` })
      .option('to', { type: 'string', describe: 'Recorded before this time (like --from)' })
      .option('limit', { alias: 'n', type: 'string', describe: `Events per page: a number from 1 to 1000 (default ${DEFAULT_LIMIT})` })
      .option('cursor', { type: 'string', describe: 'Continue after the previous page (printed under it)' })
      .example('$0 search -s acme --actor alice', '')
      .example('$0 search --result failure --from 2025-01-01 --json', '') as unknown as Argv<SearchArgs>,
  handler: handler(runSearch),
};
