// chainlog keygen NAME: an Ed25519 key pair for signing checkpoints. NAME.key.pem signs (keep it away
// from the database and its administrators); NAME.pub.pem checks, and goes to whoever verifies.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { invalidArgument } from '../../src/errors.js';
import { generateSigningKeys, keyFingerprint } from '../../src/signed-checkpoint.js';
import { EXIT, handler, type GlobalArgs } from '../command.js';
import { printable, writeJson, writeLine, type Output } from '../output.js';

export interface KeygenArgs extends GlobalArgs {
  name: string;
}

export async function runKeygen(args: KeygenArgs, out: Output): Promise<number> {
  const privateFile = `${args.name}.key.pem`;
  const publicFile = `${args.name}.pub.pem`;
  // Never over an existing key: a signing key replaced by mistake cannot be got back, and checkpoints
  // it signed could no longer be told from forgeries by its holder. Both names are checked before
  // either file is written, so that a refusal leaves nothing behind (a private key without its public
  // file would make the next run with the same NAME fail too).
  const existing = [privateFile, publicFile].find((file) => existsSync(file));
  if (existing !== undefined) throw keyExists(existing);
  const { privateKeyPem, publicKeyPem } = generateSigningKeys();
  const written: string[] = [];
  for (const [file, text, mode] of [[privateFile, privateKeyPem, 0o600], [publicFile, publicKeyPem, 0o644]] as const) {
    try {
      // wx all the same: a file made since the check above is refused, not overwritten.
      writeFileSync(file, text, { flag: 'wx', mode });
      written.push(file);
    } catch (e) {
      // Only what this run wrote (with wx, a file it made itself) is removed: no half pair is left.
      for (const mine of written) rmSync(mine, { force: true });
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw keyExists(file);
      throw invalidArgument(`Cannot write ${file}: ${(e as Error).message}.`);
    }
  }
  const key = keyFingerprint(publicKeyPem);
  if (out.json) {
    writeJson(out, { privateKey: privateFile, publicKey: publicFile, key });
  } else {
    writeLine(out.stdout, `Wrote ${printable(privateFile)} (signs; keep it away from the database) and ${printable(publicFile)} (checks).`);
    writeLine(out.stdout, `Key ${key}`);
  }
  return EXIT.OK;
}

function keyExists(file: string) {
  return invalidArgument(`Cannot write ${file}: it exists.`, 'Choose another NAME; chainlog never overwrites a key.');
}

export const keygenCommand: CommandModule<GlobalArgs, KeygenArgs> = {
  command: 'keygen <name>',
  describe: 'Make an Ed25519 key pair for signing checkpoints: NAME.key.pem and NAME.pub.pem',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('name', { type: 'string', demandOption: true, describe: 'Path and name of the key files, without extension' })
      .hide('database-url')
      .check((a) => {
        if (a.databaseUrl !== undefined) throw invalidArgument('keygen takes no --database-url: it makes a key pair on this machine, with no database.');
        return true;
      })
      .example('$0 keygen audit', 'Writes audit.key.pem and audit.pub.pem') as unknown as Argv<KeygenArgs>,
  handler: handler(runKeygen),
};
