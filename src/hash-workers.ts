// Content checks on worker threads, for the offline verifier. The main thread reads and parses the
// rows, builds each event's canonical bytes and data-digest input, and checks the links (they need only
// stored hashes); the two SHA-256 per event, most of the per-event cost, run here in parallel.
//
// A batch only answers "every event in it hashes to its stored values, or not". The verifier uses the
// pool as a fast path for an intact chain: on any problem it scans again on one thread, which names
// the first broken event and classifies it exactly as before.
import { Worker } from 'node:worker_threads';

// Plain JavaScript run with `eval`: a worker file would need its own loader under tsx and vitest.
// A batch is a sequence of records: u32 canonical length, u32 digest-input length, the stored hash
// (32 bytes), the canonical bytes (whose bytes 50..81 are the stored data digest), the digest input.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
// The digest as a latin1 string ('binary': one character per byte): on Node 20 a Buffer answer costs more than
// the hashing itself (src/offline-verify.ts, nodeSha256Matches).
const sha256 = typeof crypto.hash === 'function'
  ? (b) => crypto.hash('sha256', b, 'binary')
  : (b) => crypto.createHash('sha256').update(b).digest('binary');
const same = (h, b, at) => { for (let i = 0; i < 32; i++) if (h.charCodeAt(i) !== b[at + i]) return false; return true; };
parentPort.on('message', ({ id, buffer, length }) => {
  const bytes = new Uint8Array(buffer, 0, length);
  const view = new DataView(buffer);
  let ok = true;
  for (let p = 0; p < length && ok; ) {
    const canonLength = view.getUint32(p);
    const digestLength = view.getUint32(p + 4);
    const stored = p + 8;
    const canon = stored + 32;
    const digest = canon + canonLength;
    ok = canonLength >= 82
      && same(sha256(bytes.subarray(digest, digest + digestLength)), bytes, canon + 50)
      && same(sha256(bytes.subarray(canon, digest)), bytes, stored);
    p = digest + digestLength;
  }
  parentPort.postMessage({ id, ok });
});
`;

const BATCH_BYTES = 1 << 18;

/** Worker threads that check events' content; see the top of this file. */
export class ContentCheckPool {
  private readonly workers: Worker[];
  private next = 0;
  private batch = new Uint8Array(BATCH_BYTES);
  private view = new DataView(this.batch.buffer);
  private used = 0;
  private nextId = 0;
  private readonly inFlight = new Map<
    number,
    { answer: Promise<boolean>; resolve: (ok: boolean) => void; reject: (e: unknown) => void }
  >();
  /** False once any batch held an event whose content does not match. */
  private intact = true;
  private failure: unknown;
  private closed = false;

  constructor(count: number) {
    this.workers = Array.from({ length: count }, () => {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.on('message', ({ id, ok }: { id: number; ok: boolean }) => {
        if (!ok) this.intact = false;
        this.inFlight.get(id)?.resolve(ok);
        this.inFlight.delete(id);
      });
      worker.on('error', (e) => {
        this.failure ??= e;
        for (const waiting of this.inFlight.values()) waiting.reject(e);
        this.inFlight.clear();
      });
      return worker;
    });
  }

  /** Queues one event: its canonical bytes, its data-digest input and its stored hash. */
  add(canon: Uint8Array, canonLength: number, digest: Uint8Array, digestLength: number, stored: Uint8Array): void {
    const size = 8 + 32 + canonLength + digestLength;
    if (this.used + size > this.batch.length) {
      if (this.used > 0) this.flush();
      if (size > this.batch.length) {
        this.batch = new Uint8Array(size);
        this.view = new DataView(this.batch.buffer);
      }
    }
    const b = this.batch;
    const p = this.used;
    this.view.setUint32(p, canonLength);
    this.view.setUint32(p + 4, digestLength);
    b.set(stored.subarray(0, 32), p + 8);
    b.set(canon.subarray(0, canonLength), p + 40);
    b.set(digest.subarray(0, digestLength), p + 40 + canonLength);
    this.used = p + size;
  }

  /** Waits while more than `limit` batches are pending, so that a slow pool bounds the memory used. */
  async backpressure(limit = 4 * this.workers.length): Promise<void> {
    while (this.inFlight.size > limit) await Promise.race([...this.inFlight.values()].map((b) => b.answer));
  }

  /** True when every queued event's content matched. Stops the workers. */
  async finish(): Promise<boolean> {
    try {
      if (this.used > 0) this.flush();
      await this.backpressure(0);
      if (this.failure) throw this.failure;
      return this.intact;
    } finally {
      await this.close();
    }
  }

  /** Stops the workers (again: harmless). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private flush(): void {
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    const buffer = this.batch.buffer;
    const length = this.used;
    let settle!: { resolve: (ok: boolean) => void; reject: (e: unknown) => void };
    const answer = new Promise<boolean>((resolve, reject) => (settle = { resolve, reject }));
    answer.catch(() => {}); // a worker error is rethrown by finish(); never an unhandled rejection
    this.inFlight.set(id, { answer, ...settle });
    this.workers[this.next]!.postMessage({ id, buffer, length }, [buffer as ArrayBuffer]);
    this.next = (this.next + 1) % this.workers.length;
    this.batch = new Uint8Array(BATCH_BYTES);
    this.view = new DataView(this.batch.buffer);
    this.used = 0;
  }
}
