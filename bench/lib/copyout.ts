// COPY ... TO STDOUT into Node, counting rows and bytes and keeping nothing: the floor for anything
// that reads events out of the database (export, offline verify).
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

export async function copyOut(client: pg.ClientBase, sql: string): Promise<{ rows: number; bytes: number }> {
  let bytes = 0;
  const source = client.query(copyTo(sql));
  await pipeline(
    source,
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        done();
      },
    }),
  );
  return { rows: Number(source.rowCount), bytes };
}

/** A Writable that discards what it is given and counts the bytes. */
export function nullSink(): Writable & { bytes: number } {
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      sink.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      done();
    },
  }) as Writable & { bytes: number };
  sink.bytes = 0;
  return sink;
}
