#!/usr/bin/env node
// The `chainlog` bin. In a clone (cli/main.ts next to this file) it runs the TypeScript sources through
// tsx; in a published package, which ships only the compiled dist/, it runs dist/cli/main.js.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = new URL('./main.ts', import.meta.url);
let cli;
if (existsSync(fileURLToPath(source))) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(source.href);
} else {
  cli = await import(new URL('../dist/cli/main.js', import.meta.url).href);
}
cli.exitWith(await cli.main(process.argv.slice(2)));
