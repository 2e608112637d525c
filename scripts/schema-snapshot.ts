// Regenerates sql/schema.snapshot.txt from a fresh install on an embedded PostgreSQL.
// Run after changing sql/: npm run schema:snapshot
import { rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbedded } from '../src/embedded.js';
import { migrate } from '../src/migrate.js';
import { schemaSnapshot } from '../src/schema-snapshot.js';

const dataDir = path.join(os.tmpdir(), `chainlog-snapshot-${process.pid}`, 'data');
const server = await startEmbedded({ dataDir, persistent: false });
try {
  const client = new pg.Client({ connectionString: server.connectionString('postgres') });
  await client.connect();
  await client.query('create database snapshot');
  await client.end();
  const url = server.connectionString('snapshot');
  await migrate({ connectionString: url });
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const text = await schemaSnapshot(db);
  await db.end();
  const out = path.resolve(import.meta.dirname, '..', 'sql', 'schema.snapshot.txt');
  writeFileSync(out, text);
  console.log(`wrote ${out}`);
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await server.stop();
  rmSync(path.dirname(dataDir), { recursive: true, force: true });
}
