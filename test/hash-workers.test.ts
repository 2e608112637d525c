import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dataDigestInput } from '../src/format.js';
import { ContentCheckPool } from '../src/hash-workers.js';
import { VECTORS_PATH, type VectorFile } from './vectors/generate.js';

// The pool is the verifier's fast path: it must say "intact" for intact events and "not intact" as soon
// as one byte of one event differs. Checked on the format vectors, whose bytes and hashes are known.
const vectors = (JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as VectorFile).vectors;
const hex = (h: string) => Uint8Array.from(Buffer.from(h.replace(/^\\x/, ''), 'hex'));

function records() {
  return vectors.map((v) => ({
    canon: hex(v.expected.canonical_bytes),
    digest: dataDigestInput(v.input.payload, v.input.before, v.input.after),
    hash: hex(v.expected.hash),
  }));
}

async function check(workers: number, events: ReturnType<typeof records>, repeat: number): Promise<boolean> {
  const pool = new ContentCheckPool(workers);
  try {
    for (let i = 0; i < repeat; i++) for (const e of events) pool.add(e.canon, e.canon.length, e.digest, e.digest.length, e.hash);
    return await pool.finish();
  } finally {
    await pool.close();
  }
}

describe('content checks on worker threads', () => {
  it('accept every format vector, over many batches and two workers', async () => {
    // ~27 vectors x 500: several 256 KiB batches, spread over both workers.
    expect(await check(2, records(), 500)).toBe(true);
  });

  it('refuse a changed canonical byte, a changed digest input or a wrong stored hash', async () => {
    const flip = (bytes: Uint8Array, at: number) => (bytes[at] = bytes[at]! ^ 1);
    const changes: Array<(e: ReturnType<typeof records>[number]) => void> = [
      (e) => flip(e.canon, e.canon.length - 2), // a text field
      (e) => flip(e.canon, 60), // the stored data digest
      (e) => flip(e.digest, 0), // the JSON
      (e) => flip(e.hash, 31), // the stored hash
    ];
    for (const change of changes) {
      const events = records();
      change(events[events.length - 1]!);
      expect(await check(1, events, 1)).toBe(false);
    }
  });
});
