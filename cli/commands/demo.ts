// chainlog demo: the whole story on a throwaway embedded PostgreSQL. Install, append an audit trail,
// verify it, watch the append-only guard refuse an UPDATE, tamper as a superuser would, verify again.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { createChainlog, type NewEvent, type VerifyReport } from '../../src/client.js';
import { invalidArgument, toChainlogError } from '../../src/errors.js';
import { migrate } from '../../src/migrate.js';
import { EXIT, handler, type GlobalArgs } from '../command.js';
import { formatReports } from './verify.js';
import { bold, dim, formatTable, printable, red, writeJson, writeLine, type Output } from '../output.js';

export type DemoArgs = GlobalArgs;

const STREAM = 'acme';

// An afternoon at ACME, as the application would log it.
const STORY: NewEvent[] = [
  { eventType: 'USER_LOGIN', action: 'LOGIN', actor: 'alice@acme.test', sourceIp: '203.0.113.7' },
  { eventType: 'INVOICE_CREATED', action: 'CREATE', actor: 'alice@acme.test', resourceType: 'invoice', resourceId: '1042', payload: { amount: 1200, currency: 'EUR' } },
  { eventType: 'INVOICE_APPROVED', action: 'UPDATE', actor: 'bob@acme.test', resourceType: 'invoice', resourceId: '1042' },
  { eventType: 'PAYMENT_SENT', action: 'EXECUTE', actor: 'billing-worker', actorType: 'service', resourceType: 'payment', resourceId: 'p-77', payload: { invoice: '1042', amount: 1200 } },
  { eventType: 'USER_ROLE_CHANGED', action: 'UPDATE', actor: 'mallory@acme.test', resourceType: 'user', resourceId: 'mallory', before: { role: 'viewer' }, after: { role: 'admin' } },
  { eventType: 'USER_LOGIN', action: 'LOGIN', actor: 'mallory@acme.test', result: 'failure', sourceIp: '198.51.100.23' },
  { eventType: 'REPORT_EXPORTED', action: 'EXECUTE', actor: 'mallory@acme.test', resourceType: 'report', resourceId: 'payroll-2025' },
  { eventType: 'USER_LOGOUT', action: 'LOGOUT', actor: 'alice@acme.test' },
];

// The cover-up: make event 5 say mallory stayed a viewer. Done with the triggers off, as only a
// superuser can: chainlog cannot stop that, but verify() sees it.
const TAMPER_SQL = `begin;
set local session_replication_role = replica;
update chainlog.events set after = '{"role": "viewer"}'
 where stream = '${STREAM}' and seq = 5;
commit;`;

export async function runDemo(args: DemoArgs, out: Output): Promise<number> {
  const say = (text = '') => {
    if (!out.json) writeLine(out.stdout, text);
  };
  const step = (n: number, title: string) => say(`\n${bold(out.stdout, `${n}. ${title}`)}`);
  const code = (text: string) => say(dim(out.stdout, text.replace(/^(?=.)/gm, '   ')));
  // The same report `chainlog verify` prints.
  const report = (r: VerifyReport) => say(formatReports(out, [r]).replace(/^(?=.)/gm, '   '));

  say(bold(out.stdout, 'chainlog demo: a tamper-evident audit log inside PostgreSQL'));
  say(dim(out.stdout, 'Every event is chained to the previous one in its stream by a SHA-256 hash, computed by a trigger.'));

  step(1, 'Start a throwaway PostgreSQL (embedded, nothing to install)');
  const home = mkdtempSync(path.join(os.tmpdir(), 'chainlog-demo-'));
  const started = performance.now();
  const { startEmbedded } = await import('../../src/embedded.js');
  const server = await startEmbedded({ dataDir: path.join(home, 'pg'), persistent: false });
  say(`   PostgreSQL is up on port ${server.port} (${((performance.now() - started) / 1000).toFixed(1)} s), data in ${home}`);
  const url = server.connectionString('postgres');
  const chainlog = createChainlog({ connectionString: url });
  const admin = new pg.Client({ connectionString: url });
  try {
    await admin.connect();

    step(2, 'Install chainlog');
    code('npx chainlog migrate        # or: await migrate({ connectionString })');
    const { applied } = await migrate({ connectionString: url });
    say(`   ${applied.length} migrations applied: ${applied.join(', ')}`);

    step(3, `Append the day's events to stream '${STREAM}'`);
    code(`await chainlog.append({ stream: '${STREAM}', eventType: 'INVOICE_CREATED', action: 'CREATE', ... })`);
    const appended = [];
    for (const event of STORY) appended.push({ ...event, ...(await chainlog.append({ ...event, stream: STREAM })) });
    say(
      formatTable(appended, [
        { header: 'SEQ', value: (e) => e.seq, right: true },
        { header: 'ACTOR', value: (e) => e.actor },
        { header: 'EVENT', value: (e) => e.eventType },
        { header: 'RESULT', value: (e) => e.result ?? 'success' },
        { header: 'DETAIL', value: (e) => JSON.stringify(e.after ?? e.payload ?? null).replace(/^null$/, '') },
        { header: 'HASH', value: (e) => `${e.hash.slice(0, 16)}…` },
      ]).replace(/^(?=.)/gm, '   '),
    );

    step(4, 'Verify the chain');
    code(`SELECT * FROM chainlog.verify('${STREAM}');    -- or: npx chainlog verify --stream ${STREAM}`);
    const before = await chainlog.verify({ stream: STREAM });
    report(before);

    step(5, 'Try to rewrite history as the application would');
    code(`UPDATE chainlog.events SET after = '{"role": "viewer"}' WHERE stream = '${STREAM}' AND seq = 5;`);
    const refused = await admin
      .query(`update chainlog.events set after = '{"role": "viewer"}' where stream = '${STREAM}' and seq = 5`)
      .then(() => undefined, (e) => toChainlogError(e));
    say(refused ? `   refused: ${refused.code} ${printable(refused.message)}` : red(out.stdout, '   the UPDATE was not refused!'));

    step(6, 'Tamper as a superuser would: switch the triggers off and hide the role change');
    code(TAMPER_SQL);
    await admin.query(TAMPER_SQL);
    const row = await admin.query<{ after: unknown }>(`select after from chainlog.events where stream = $1 and seq = 5`, [STREAM]);
    say(`   event 5 now says mallory's role became ${JSON.stringify(row.rows[0]?.after)}: the escalation is gone from the table.`);

    step(7, 'Verify again');
    code(`SELECT * FROM chainlog.verify('${STREAM}');`);
    const after = await chainlog.verify({ stream: STREAM });
    report(after);

    say(
      `\n${after.ok ? red(out.stdout, 'The tampering went unnoticed: that is a bug.') : bold(out.stdout, 'The tampering is detected, and verify names the event that was changed.')}`,
    );
    say(dim(out.stdout, 'Next: npx chainlog append ... and npx chainlog verify keep a log in ./.chainlog/, or point --database-url at your database.'));
    if (out.json) writeJson(out, { appended: appended.map(({ id, stream, seq, hash }) => ({ id, stream, seq, hash })), before, refused: refused?.code ?? null, after });
    return before.ok && !after.ok && refused ? EXIT.OK : EXIT.ERROR;
  } finally {
    await admin.end().catch(() => {});
    await chainlog.close();
    await server.stop();
    rmSync(home, { recursive: true, force: true });
  }
}

export const demoCommand: CommandModule<GlobalArgs, DemoArgs> = {
  command: 'demo',
  describe: 'Walk through install, append, verify and tampering on a throwaway embedded PostgreSQL',
  // The demo tampers with what it writes, as a superuser: it only ever runs on a server of its own.
  builder: (y: Argv<GlobalArgs>) =>
    y.hide('database-url').check((a) => {
      if (a.databaseUrl !== undefined) {
        throw invalidArgument(
          'demo takes no --database-url: it always runs on a throwaway embedded PostgreSQL, because it tampers with the events it writes.',
          'To try chainlog on your server, run chainlog migrate, append and verify with --database-url.',
        );
      }
      return true;
    }),
  handler: handler(runDemo),
};
