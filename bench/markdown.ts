// Prints a results file as Markdown, for the results section of docs/PERFORMANCE.md:
//   npx tsx bench/markdown.ts [bench/results/latest.json]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderMarkdown } from './lib/report.js';
import { renderConditions, type Results } from './lib/results.js';

const file = process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'latest.json');
let results: Results;
try {
  results = JSON.parse(readFileSync(file, 'utf8')) as Results;
} catch (e) {
  process.stderr.write(`cannot read ${file}: ${(e as Error).message}\nRun \`npm run bench\` first, or name a results file.\n`);
  process.exit(2);
}
const missing = results.workloads.filter((w) => w.status !== 'ok').map((w) => `- ${w.id} ${w.status}: ${w.message?.split('\n')[0]}`);
process.stdout.write(
  [
    `Measured with \`npm run bench\`${results.options.quick ? ' --quick (tiny sizes: these figures mean nothing)' : ''}:`,
    '',
    renderConditions(results, 'markdown'),
    '',
    renderMarkdown(results.workloads.flatMap((w) => w.figures)),
    ...(missing.length ? ['', 'Not measured:', ...missing] : []),
    '',
  ].join('\n'),
);
