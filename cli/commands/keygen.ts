// chainlog keygen NAME: an Ed25519 key pair for signing checkpoints. NAME.key.pem signs (keep it away
// from the database and its administrators); NAME.pub.pem checks, and goes to whoever verifies.
import { writeFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { invalidArgument } from '../../src/errors.js';
import { generateSigningKeys, keyFingerprint } from '../../src/signed-checkpoint.js';
import { EXIT, handler, type GlobalArgs } from '../command.js';
import { printable, writeJson, writeLine, type Output } from '../output.js';

export interface KeygenArgs extends GlobalArgs {
  name: string;
}

export async function runKeygen(args: KeygenArgs, out: Output): Promise<number> {
  const { privateKeyPem, publicKeyPem } = generateSigningKeys();
  const privateFile = `${args.name}.key.pem`;
  const publicFile = `${args.name}.pub.pem`;
  // Never over an existing key: a signing key replaced by mistake cannot be got back, and checkpoints
  // it signed could no longer be told from forgeries by its holder.
  for (const [file, text, mode] of [[privateFile, privateKeyPem, 0o600], [publicFile, publicKeyPem, 0o644]] as const) {
    try {
      writeFileSync(file, text, { flag: 'wx', mode });
    } catch (e) {
      const exists = (e as NodeJS.ErrnoException).code === 'EEXIST';
      throw invalidArgument(`Cannot write ${file}: ${exists ? 'it exists' : (e as Error).message}.`, exists ? 'Choose another NAME; chainlog never overwrites a key.' : undefined);
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
