// chainlog get <id>: one event, every field.
import type { Argv, CommandModule } from 'yargs';
import { invalidArgument } from '../../src/errors.js';
import { EXIT, handler, type GlobalArgs } from '../command.js';
import { withDatabase } from '../connection.js';
import { eventForJson, formatEvent, writeJson, writeLine, type Output } from '../output.js';

export interface GetArgs extends GlobalArgs {
  id: string;
}

export async function runGet(args: GetArgs, out: Output): Promise<number> {
  if (!/^\d+$/.test(String(args.id))) throw invalidArgument(`The event id must be a number, not "${args.id}".`);
  return withDatabase(args, out, async (db) => {
    const event = await db.chainlog.get(String(args.id));
    if (!event) {
      throw invalidArgument(`There is no event with id ${args.id}.`, '`chainlog search` lists events with their ids.');
    }
    if (out.json) writeJson(out, eventForJson(event));
    else writeLine(out.stdout, formatEvent(event));
    return EXIT.OK;
  });
}

export const getCommand: CommandModule<GlobalArgs, GetArgs> = {
  command: 'get <id>',
  describe: 'Show one event by id',
  builder: (y: Argv<GlobalArgs>) =>
    y.positional('id', { type: 'string', describe: 'The event id (from append or search)' }) as unknown as Argv<GetArgs>,
  handler: handler(runGet),
};
