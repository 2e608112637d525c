// chainlog checkpoint --key KEY: every stream's head, signed. Keep the file outside the database (and
// the public key with whoever verifies); `chainlog verify --checkpoints FILE --public-key PUB` later
// checks that every stream still holds the event each head names, with that hash.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { invalidArgument } from '../../src/errors.js';
import { signCheckpoint, type CheckpointHeads } from '../../src/signed-checkpoint.js';
import { EXIT, handler, shellWord, type GlobalArgs } from '../command.js';
import { withDatabase } from '../connection.js';
import { printable, writeJson, writeLine, type Output } from '../output.js';

export interface CheckpointArgs extends GlobalArgs {
  key: string;
  out?: string;
}

export async function runCheckpoint(args: CheckpointArgs, out: Output): Promise<number> {
  let privateKey: string;
  try {
    privateKey = readFileSync(args.key, 'utf8');
  } catch (e) {
    throw invalidArgument(`--key ${args.key}: cannot read it: ${(e as Error).message}.`, '`chainlog keygen NAME` makes a key pair.');
  }
  const signed = await withDatabase(args, out, async (db) => signCheckpoint(await db.chainlog.streams(), privateKey));
  const text = `${JSON.stringify(signed, null, 2)}\n`;
  const heads = JSON.parse(signed.heads) as CheckpointHeads;
  // Without --out the document itself is the output, --json or not.
  if (args.out === undefined) out.stdout.write(text);
  else writeFileSync(args.out, text);
  if (out.json) {
    if (args.out !== undefined) writeJson(out, { file: args.out, key: signed.key, takenAt: heads.takenAt, streams: heads.streams.length });
  } else {
    writeLine(out.stderr, `Signed the heads of ${heads.streams.length} stream(s) with key ${signed.key}${args.out ? `, in ${printable(args.out)}` : ''}.`);
    writeLine(out.stderr, `Check later: chainlog verify --checkpoints ${printable(shellWord(args.out ?? 'FILE'))} --public-key PUBLIC-KEY.pem`);
  }
  return EXIT.OK;
}

export const checkpointCommand: CommandModule<GlobalArgs, CheckpointArgs> = {
  command: 'checkpoint',
  describe: 'Sign every stream\'s head with an Ed25519 key (for verify --checkpoints --public-key)',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .option('key', { type: 'string', demandOption: true, describe: 'The private key (PEM) to sign with, as `chainlog keygen` writes it' })
      .option('out', { alias: 'o', type: 'string', describe: 'Write the signed checkpoint here (default: stdout)' })
      .example('$0 checkpoint --key audit.key.pem -o heads-2026-11-24.json', 'Sign today\'s heads; keep the file outside the database') as unknown as Argv<CheckpointArgs>,
  handler: handler(runCheckpoint),
};
