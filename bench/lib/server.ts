// The server the benchmark runs on, and its scratch databases.
//
// Default: a fresh embedded PostgreSQL in a temporary directory, deleted afterwards. With DATABASE_URL:
// that server, where the run creates chainlog_bench_<pid> (chainlog and the baselines installed: the
// template) and clones it per workload as chainlog_bench_<pid>_<label>, so no workload sees another's
// rows; every one of them is dropped at the end, also after an error or Ctrl-C.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbedded, type EmbeddedServer } from '../../src/embedded.js';
import { migrate } from '../../src/migrate.js';

const SETUP_SQL = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'sql', 'setup.sql');

/** Settings that change what the figures mean; recorded with every run. */
export const RECORDED_SETTINGS = [
  'server_version', 'fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'wal_compression',
  'max_wal_size', 'checkpoint_timeout', 'shared_buffers', 'work_mem', 'maintenance_work_mem',
  'effective_cache_size', 'max_worker_processes', 'max_parallel_workers', 'max_parallel_workers_per_gather',
  'jit', 'jit_above_cost', 'huge_pages', 'server_encoding', 'autovacuum',
];

export interface BenchServer {
  kind: 'embedded' | 'DATABASE_URL';
  /** The database that has chainlog and bench/sql/setup.sql installed; workloads clone it. */
  template: string;
  url(database: string): string;
  /** A new database cloned from the template. */
  cloneDatabase(label: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  settings(): Promise<Record<string, string>>;
  /** Drops every database this run created and stops the embedded server. Safe to call twice. */
  close(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

export async function openServer(log: (message: string) => void): Promise<BenchServer> {
  let embedded: EmbeddedServer | undefined;
  let baseUrl: string;
  let kind: BenchServer['kind'];
  let tempDir: string | undefined;
  if (process.env.DATABASE_URL) {
    baseUrl = process.env.DATABASE_URL;
    kind = 'DATABASE_URL';
  } else {
    tempDir = path.join(os.tmpdir(), `chainlog-bench-${process.pid}`);
    log(`starting embedded PostgreSQL in ${tempDir}`);
    // Default settings, as FIELD-NOTES measured them: the run records them next to the figures.
    embedded = await startEmbedded({ dataDir: path.join(tempDir, 'data'), persistent: false });
    baseUrl = embedded.connectionString('postgres');
    kind = 'embedded';
  }

  const admin = new pg.Client({ connectionString: baseUrl });
  // Ctrl-C reaches an embedded server too, which then shuts down: report it, do not crash on it.
  admin.on('error', (e) => log(`server connection lost: ${e.message}`));
  await admin.connect();
  const created: string[] = [];
  const template = `chainlog_bench_${process.pid}`;
  let closing: Promise<void> | undefined;

  const server: BenchServer = {
    kind,
    template,
    url: (database) => withDatabase(baseUrl, database),
    async cloneDatabase(label) {
      const name = `${template}_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`;
      await admin.query(`drop database if exists ${quoteIdent(name)}`);
      await admin.query(`create database ${quoteIdent(name)} template ${quoteIdent(template)}`);
      created.push(name);
      return name;
    },
    async dropDatabase(name) {
      await admin.query(`drop database if exists ${quoteIdent(name)} with (force)`);
      const i = created.indexOf(name);
      if (i >= 0) created.splice(i, 1);
    },
    async settings() {
      const { rows } = await admin.query<{ name: string; value: string }>(
        `select name, current_setting(name) as value from pg_settings where name = any($1) order by name`,
        [RECORDED_SETTINGS],
      );
      const extra = await admin.query<{ jit_available: boolean; collation: string }>(
        `select pg_jit_available() as jit_available, datcollate as collation from pg_database where datname = $1`,
        [template],
      );
      const e = extra.rows[0];
      return {
        ...Object.fromEntries(rows.map((r) => [r.name, r.value])),
        jit_available: String(e?.jit_available),
        database_collation: String(e?.collation),
      };
    },
    close() {
      // One promise for every caller: a Ctrl-C during the run and the run's own ending both wait for it.
      closing ??= (async () => {
        for (const name of [...created].reverse()) {
          await admin.query(`drop database if exists ${quoteIdent(name)} with (force)`).catch((e) => log(`could not drop ${name}: ${e.message}`));
        }
        await admin.end().catch(() => {});
        if (embedded) {
          await embedded.stop().catch(() => {});
          if (tempDir) rmSync(tempDir, { recursive: true, force: true });
        }
      })();
      return closing;
    },
  };

  try {
    // chainlog needs UTF8. Most servers default to it; otherwise ask for it explicitly.
    const { rows } = await admin.query<{ utf8: boolean }>(
      `select pg_encoding_to_char(encoding) = 'UTF8' as utf8 from pg_database where datname = 'template1'`,
    );
    await admin.query(`drop database if exists ${quoteIdent(template)} with (force)`);
    await admin.query(
      rows[0]?.utf8
        ? `create database ${quoteIdent(template)}`
        : `create database ${quoteIdent(template)} template template0 encoding 'UTF8' locale 'C.UTF-8'`,
    );
    created.push(template);
    await migrate({ connectionString: server.url(template) });
    const client = new pg.Client({ connectionString: server.url(template) });
    await client.connect();
    try {
      await client.query(readFileSync(SETUP_SQL, 'utf8'));
      await client.query('vacuum analyze');
    } finally {
      await client.end();
    }
  } catch (e) {
    await server.close();
    throw e;
  }
  return server;
}

/** Machine facts recorded with every run. */
export function machineInfo() {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    // Other people's work on the same machine shows up here, and explains a noisy run.
    loadAverageAtStart: os.loadavg(),
  };
}

export function gitInfo(): { commit: string | null; dirty: boolean | null } {
  const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return { commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', '--untracked-files=no') !== '' };
  } catch {
    return { commit: null, dirty: null };
  }
}
