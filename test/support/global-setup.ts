// Starts one PostgreSQL server for the whole test run and installs chainlog once into a template
// database; each test file clones its own database from it (test/support/db.ts).
//
// Which server: DATABASE_URL when set; otherwise a testcontainers PostgreSQL when CHAINLOG_TEST_DOCKER=1
// and a Docker engine is reachable; otherwise (the default) an embedded PostgreSQL 18 from npm.
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbedded } from '../../src/embedded.js';
import { migrate } from '../../src/migrate.js';

declare module 'vitest' {
  export interface ProvidedContext {
    serverUrl: string;
    /** Prefix of every database this run creates; the template is `${runId}_template`. */
    runId: string;
  }
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function startServer(): Promise<{ url: string; stop: () => Promise<void>; label: string }> {
  if (process.env.DATABASE_URL) {
    return { url: process.env.DATABASE_URL, stop: async () => {}, label: 'DATABASE_URL' };
  }
  if (process.env.CHAINLOG_TEST_DOCKER === '1') {
    // testcontainers 12 needs Node 22 or later: on Node 20 its import throws.
    const nodeMajor = Number(process.versions.node.split('.')[0]);
    if (nodeMajor < 22) {
      console.warn(`CHAINLOG_TEST_DOCKER=1 needs Node 22 or later (testcontainers), this is ${process.version}: using embedded PostgreSQL instead.`);
    } else if (existsSync('/var/run/docker.sock') || process.env.DOCKER_HOST) {
      const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
      const container = await new PostgreSqlContainer('postgres:18').start();
      return { url: container.getConnectionUri(), stop: async () => void (await container.stop()), label: 'testcontainers' };
    } else {
      console.warn('CHAINLOG_TEST_DOCKER=1 but no Docker engine is reachable: using embedded PostgreSQL instead.');
    }
  }
  const dataDir = path.join(os.tmpdir(), `chainlog-test-pg-${process.pid}`, 'data');
  const server = await startEmbedded({ dataDir, persistent: false });
  return {
    url: server.connectionString('postgres'),
    label: 'embedded',
    stop: async () => {
      await server.stop();
      rmSync(path.dirname(dataDir), { recursive: true, force: true });
    },
  };
}

export default async function setup(project: TestProject) {
  const server = await startServer();
  const runId = `chainlog_${process.pid}`;
  const template = `${runId}_template`;
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  const version = (await admin.query<{ server_version: string }>('show server_version')).rows[0]!.server_version;
  console.log(`chainlog tests: PostgreSQL ${version} (${server.label})`);
  await admin.query(`drop database if exists ${template}`);
  await admin.query(`create database ${template}`);
  await migrate({ connectionString: withDatabase(server.url, template) });

  project.provide('serverUrl', server.url);
  project.provide('runId', runId);

  return async () => {
    // Drop what this run created, unless CHAINLOG_KEEP_DB=1 asks to keep the databases for inspection.
    const leftovers = await admin.query<{ datname: string }>(
      `select datname from pg_database where datname like $1 and $2`,
      [`${runId}\\_%`, process.env.CHAINLOG_KEEP_DB !== '1'],
    );
    for (const { datname } of leftovers.rows) await admin.query(`drop database if exists "${datname}" with (force)`);
    await admin.end();
    await server.stop();
  };
}
