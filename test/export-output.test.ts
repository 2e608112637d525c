// Where an export writes, and what a failed export leaves there: a regular file it wrote is taken back,
// anything else (a FIFO, a device, a symbolic link) is left as it was; and every failure of the output,
// however the output reports it, is the output's error.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainlogConnectionError, ChainlogError } from '../src/errors.js';
import { exportEvents, type ExportOptions } from '../src/export.js';
import { runCli } from './support/cli.js';
import { useChainlogDatabase } from './support/db.js';
import { settlesWithin } from './support/settles.js';
import { seedStream } from './support/tamper.js';

const db = useChainlogDatabase();
const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-export-output-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Megabytes of NDJSON: the export is still writing when its output fails.
const BIG = 'output-big';
const SMALL = 'output-small';
beforeAll(async () => {
  await seedStream(db.pool, BIG, 5_000);
  await seedStream(db.pool, SMALL, 3);
});

const failure = (e: unknown) => e as ChainlogError;

/** Exports BIG to `output` and returns what it rejected with. */
function failedExport(output: ExportOptions['output'], options: Partial<ExportOptions> = {}): Promise<unknown> {
  return settlesWithin(exportEvents({ db: db.pool, stream: BIG, format: 'ndjson', output, ...options }).then(
    () => {
      throw new Error('the export succeeded');
    },
    (e: unknown) => e,
  ));
}

/** An onProgress that fails the export once it has written something. */
const stopAfterFirstChunk = () => {
  throw new Error('progress bar crashed');
};

/** A FIFO with a reader that takes 100 bytes and goes away, as `head -c100 < fifo` does. */
function fifoWithShortReader(name: string): { fifo: string; reader: Promise<void> } {
  const fifo = path.join(dir, name);
  execFileSync('mkfifo', [fifo]);
  const child = spawn('sh', ['-c', 'head -c100 < "$0" > /dev/null', fifo], { stdio: 'ignore' });
  return { fifo, reader: new Promise((resolve) => child.on('close', () => resolve())) };
}

describe('a failed export to a path takes back only a regular file it wrote', () => {
  it('a file the export created is removed', async () => {
    const file = path.join(dir, 'created.ndjson');
    const e = await failedExport(file, { onProgress: stopAfterFirstChunk });
    expect(failure(e).message).toBe('progress bar crashed');
    expect(existsSync(file)).toBe(false);
  });

  it('a regular file the export truncated is removed', async () => {
    const file = path.join(dir, 'existing.ndjson');
    writeFileSync(file, 'an older export\n');
    await failedExport(file, { onProgress: stopAfterFirstChunk });
    expect(existsSync(file)).toBe(false);
  });

  it('a FIFO whose reader went away stays, and the error is the output\'s EPIPE', async () => {
    const { fifo, reader } = fifoWithShortReader('fifo');
    const e = await failedExport(fifo);
    await reader;
    expect(e).toBeInstanceOf(ChainlogError);
    expect(e).not.toBeInstanceOf(ChainlogConnectionError);
    expect(failure(e)).toMatchObject({ code: 'EPIPE' });
    expect(failure(e).message).toMatch(/^could not write the export to ".*fifo": EPIPE/);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it.skipIf(!existsSync('/dev/full'))('a symbolic link to a device stays (the device is not the export\'s either)', async () => {
    const link = path.join(dir, 'full');
    symlinkSync('/dev/full', link);
    const e = await failedExport(link);
    expect(failure(e)).toMatchObject({ code: 'ENOSPC' });
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('/dev/full');
  });

  it('a symbolic link to a regular file stays; the file it points to is emptied, not left cut short', async () => {
    const target = path.join(dir, 'target.ndjson');
    const link = path.join(dir, 'link.ndjson');
    writeFileSync(target, 'an older export\n');
    symlinkSync(target, link);
    await failedExport(link, { onProgress: stopAfterFirstChunk });
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('');
  });

  it('a time PostgreSQL cannot read is refused before the output is opened: no file is made', async () => {
    const file = path.join(dir, 'never.ndjson');
    const e = await failedExport(file, { from: 'not a time' });
    expect(failure(e)).toMatchObject({ code: 'CHAINLOG_INVALID_ARGUMENT' });
    expect(failure(e).message).toMatch(/^from is not a time PostgreSQL can read: "not a time"/);
    expect(existsSync(file)).toBe(false);
  });

  it('chainlog export -o FIFO exits 2 with the pipe\'s error and leaves the FIFO', async () => {
    const { fifo, reader } = fifoWithShortReader('cli-fifo');
    const r = await runCli(['export', '-s', BIG, '-o', fifo, '--database-url', db.url], { cwd: dir });
    await reader;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^chainlog: could not write the export to ".*cli-fifo": EPIPE/m);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });
});

describe('every failure of an output stream is the output\'s error', () => {
  const enospc = () => Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });

  /** A Writable whose write() throws, against the stream contract, on its `nth` write (from 1). */
  function throwingOutput(error: Error, nth: number): Writable {
    let writes = 0;
    return new Writable({
      highWaterMark: 1, // every write waits for the previous one: a later write comes from a 'drain'
      write: (_chunk, _encoding, done) => {
        if (++writes >= nth) throw error;
        setImmediate(done);
      },
    });
  }

  for (const format of ['csv', 'ndjson'] as const) {
    for (const nth of [1, 2]) {
      it(`${format}: a write() that throws on write ${nth} is the output's error, with its code, or CHAINLOG_OUTPUT without one`, async () => {
        for (const [error, code] of [[enospc(), 'ENOSPC'], [new Error('output gone'), 'CHAINLOG_OUTPUT']] as const) {
          const e = await failedExport(throwingOutput(error, nth), { format });
          expect(e).toBeInstanceOf(ChainlogError);
          expect(failure(e)).toMatchObject({ code, cause: error });
          expect(failure(e).message).toMatch(/^could not write the export to the output stream: .*\. Nothing is wrong with the database/);
        }
        // The session went back to the pool unharmed.
        expect((await settlesWithin(db.query('select 1 as one'))).rows[0].one).toBe(1);
      });
    }

    it(`${format}: a write() that calls back with the error on the first write is classed the same way`, async () => {
      const error = enospc();
      const output = new Writable({ write: (_chunk, _encoding, done) => done(error) });
      const e = await settlesWithin(exportEvents({ db: db.pool, stream: SMALL, format, output }).catch((x: unknown) => x));
      expect(failure(e)).toMatchObject({ code: 'ENOSPC', cause: error });
      expect(failure(e).message).toMatch(/^could not write the export to the output stream: no space left on device\./);
    });
  }
});
