import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createEmptyDatabase, databaseUrl } from './support/db.js';

const run = promisify(execFile);

describe('the README example', () => {
  it('examples/quickstart.ts installs chainlog, appends, searches, verifies both ways and exports', async () => {
    const url = databaseUrl(await createEmptyDatabase());
    const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-example-'));
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'examples/quickstart.ts'], {
        env: { ...process.env, DATABASE_URL: url, EXPORT_PATH: path.join(dir, 'acme.ndjson') },
      });
      expect(JSON.parse(stdout)).toEqual({ appendedSeq: '1', pages: [2, 1], inDatabase: true, offline: true, exportedRows: 3 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
