// chainlog streams: every stream with its recorded head. The head (SEQ:HASH) is what to keep outside
// the database and check later with `chainlog verify -s STREAM --checkpoint SEQ:HASH`.
import type { Argv, CommandModule } from 'yargs';
import { EXIT, handler, type GlobalArgs } from '../command.js';
import { withDatabase } from '../connection.js';
import { writeJson, writeLine, writeTable, type Output } from '../output.js';

export async function runStreams(args: GlobalArgs, out: Output): Promise<number> {
  return withDatabase(args, out, async (db) => {
    const streams = await db.chainlog.streams();
    if (out.json) {
      writeJson(out, { streams });
      return EXIT.OK;
    }
    if (streams.length === 0) {
      writeLine(out.stdout, 'No streams: the log is empty.');
      return EXIT.OK;
    }
    writeTable(out, streams, [
      { header: 'STREAM', value: (s) => s.stream, flex: true },
      { header: 'LAST APPENDED', value: (s) => s.lastAppendedAt.replace('T', ' ').slice(0, 19) },
      // Whole, never cut: it is copied as it stands into --checkpoint.
      { header: 'HEAD (SEQ:HASH)', value: (s) => `${s.headSeq}:${s.headHash}` },
    ]);
    return EXIT.OK;
  });
}

export const streamsCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'streams',
  describe: 'List the streams and their recorded heads (SEQ:HASH, for verify --checkpoint)',
  builder: (y: Argv<GlobalArgs>) =>
    y.example('$0 streams --json > heads.json', 'Keep every head outside the database, to check it later with verify --checkpoint'),
  handler: handler(runStreams),
};
