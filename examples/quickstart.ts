// The README's TypeScript example, runnable: DATABASE_URL=postgres://... npx tsx examples/quickstart.ts
// (test/examples.test.ts runs it, so it stays true.)
import { createChainlog, migrate } from '../src/index.js';

await migrate(); // connectionString defaults to DATABASE_URL
const chainlog = createChainlog(); // likewise; or { pool } / { client } to share yours

const { seq } = await chainlog.append({
  stream: 'acme', eventType: 'INVOICE_PAID', action: 'UPDATE',
  resourceType: 'invoice', resourceId: 'inv-1', payload: { amount: 120.5 },
});

// Every event written inside fn carries this context; appendMany uses COPY, in one transaction.
await chainlog.withContext({ actor: 'alice@acme', actorType: 'user', sourceIp: '203.0.113.7', requestId: 'req-1' },
  (tx) => tx.appendMany([
    { stream: 'acme', eventType: 'INVOICE_VIEWED', action: 'EXECUTE', resourceType: 'invoice', resourceId: 'inv-1' },
    { stream: 'acme', eventType: 'INVOICE_EXPORTED', action: 'EXECUTE', resourceType: 'invoice', resourceId: 'inv-1' },
  ]));

const page = await chainlog.search({ stream: 'acme', resourceType: 'invoice', resourceId: 'inv-1', limit: 2 });
const next = page.nextCursor ? await chainlog.search({ stream: 'acme', resourceType: 'invoice', resourceId: 'inv-1', limit: 2, cursor: page.nextCursor }) : null;

const inDatabase = await chainlog.verify({ stream: 'acme' }); // chainlog.verify() in SQL
const offline = await chainlog.verifyOffline({ stream: 'acme' }); // recomputed here; no chainlog SQL called
const exported = await chainlog.export({ stream: 'acme', format: 'ndjson', output: process.env.EXPORT_PATH ?? 'acme.ndjson' });
await chainlog.close();

console.log(JSON.stringify({
  appendedSeq: seq,
  pages: [page.events.length, next?.events.length ?? 0],
  inDatabase: inDatabase.ok,
  offline: offline.ok,
  exportedRows: exported.rows,
}));
