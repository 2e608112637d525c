// Checkpoints: a stream's head recorded outside the database earlier (the head `chainlog export`
// printed, a value an auditor kept), checked against the stream as it is now.
//
// Why: a superuser (or chainlog's owner) who rewrites a chain to its end with recomputed hashes, and
// rewrites the recorded head to match, leaves a stream that verify() finds intact: nothing inside the
// database remembers the old hashes. A head kept elsewhere does. The stream has grown since, so the
// check is not "the chain ends here" (a file's expectedHead) but "the chain still holds this event
// with this hash": a rewrite of any event up to it changes its hash, and cutting the stream back
// before it leaves no event there.
import { invalidArgument } from './errors.js';

/** A head recorded earlier: the event at `seq` had this hash. */
export interface Checkpoint {
  seq: number;
  /** 64 lowercase hex digits. */
  hash: string;
}

/** A checkpoint as callers give it: SEQ:HASH as `chainlog export` prints a head, or { seq, hash }. */
export type CheckpointArg = string | { seq: string | number | bigint; hash: string };

/** What a verifier found, in the shape both verifiers share. */
export interface CheckedChain {
  ok: boolean;
  checked: number;
  firstBadSeq: number | null;
  problem: string | null;
  detail: string | null;
}

/**
 * Adds the checkpoint to a verdict over the stream (or an exported file of it). `hashAtCheckpoint` is
 * the hash of the event held at checkpoint.seq, verified intact (null when there is none); `lastSeq`
 * the last event verified intact; `of` says whether a file was checked and the seq it starts at. A
 * problem the verifier found at or before the checkpoint comes first.
 */
export function applyCheckpoint<V extends CheckedChain>(
  verdict: V, checkpoint: Checkpoint, hashAtCheckpoint: string | null, lastSeq: number,
  of: { file: boolean; fromSeq: number } = { file: false, fromSeq: 1 },
): V {
  if (!verdict.ok && verdict.firstBadSeq !== null && verdict.firstBadSeq <= checkpoint.seq) return verdict;
  if (hashAtCheckpoint === null) {
    // Verified intact from seq 1 to lastSeq, yet no event at the checkpoint: the stream was cut back
    // before it, and its recorded head moved back to match (or, with no events left, removed).
    return {
      ...verdict,
      ok: false,
      checked: Math.max(0, lastSeq - of.fromSeq + 1),
      firstBadSeq: Math.max(lastSeq, of.fromSeq - 1) + 1,
      problem: 'truncated',
      detail: of.file
        // An export made before the checkpoint was taken ends before it too, innocently.
        ? `the checkpoint records event ${checkpoint.seq}, but the file ${lastSeq === 0 ? 'holds no events' : `ends at seq ${lastSeq}`}: it was cut short, or exported before the checkpoint was taken`
        : lastSeq === 0
          ? `the checkpoint records event ${checkpoint.seq}, but the stream holds no events: events 1..${checkpoint.seq} were removed`
          : `the checkpoint records event ${checkpoint.seq}, but the stream ends at seq ${lastSeq}: events ${lastSeq + 1}..${checkpoint.seq} were removed and the recorded head moved back to hide it`,
    };
  }
  if (hashAtCheckpoint !== checkpoint.hash) {
    return {
      ...verdict,
      ok: false,
      checked: checkpoint.seq - of.fromSeq,
      firstBadSeq: checkpoint.seq,
      problem: 'modified',
      detail: `event ${checkpoint.seq} does not have the hash the checkpoint recorded: the chain up to it was rewritten with recomputed hashes (the first changed event is at or before seq ${checkpoint.seq})`,
    };
  }
  return verdict;
}

/**
 * A seq given as a number, a bigint or a decimal string (as the client returns seqs): its value, or NaN
 * for anything else (a sign, a fraction, an exponent, blanks). Callers still check the range.
 */
export function decimalSeq(value: unknown): number {
  const text = String(value);
  return /^\d+$/.test(text) ? Number(text) : NaN;
}

/**
 * A checkpoint given as SEQ:HASH (as `chainlog export` prints a head), or as an object. Also reads a
 * file's expected head (`minSeq` 0: an empty stream's head), which is written the same way.
 */
export function parseCheckpoint(value: CheckpointArg, name = 'checkpoint', minSeq = 1): Checkpoint {
  const [seqText, hash] = typeof value === 'string' ? splitHead(value) : [String(value?.seq), value?.hash];
  const seq = decimalSeq(seqText);
  if (!Number.isSafeInteger(seq) || seq < minSeq || typeof hash !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hash)) {
    throw invalidArgument(
      `${name} must be SEQ:HASH, a seq of ${minSeq} or more and 64 hex digits, not ${JSON.stringify(typeof value === 'string' ? value : { seq: seqText, hash })}.`,
      '`chainlog export` and `chainlog streams` print heads in this form.',
    );
  }
  return { seq, hash: hash.toLowerCase() };
}

/**
 * The verdict for a stream the database does not know at all (no events, no recorded head) when a
 * checkpoint says it held events: not an unknown stream but one removed.
 */
export function removedStream(checkpoint: Checkpoint): CheckedChain & { problem: 'truncated'; firstBadSeq: number } {
  return applyCheckpoint({ ok: true, checked: 0, firstBadSeq: null, problem: null, detail: null }, checkpoint, null, 0) as
    CheckedChain & { problem: 'truncated'; firstBadSeq: number };
}

/** The checkpoint, checked and normalized. One beyond upToSeq could not be checked, so it is refused. */
export function checkpointWithin(given: CheckpointArg, upToSeq: number | undefined): Checkpoint {
  const checkpoint = parseCheckpoint(given);
  if (upToSeq !== undefined && upToSeq < checkpoint.seq) {
    throw invalidArgument(`The checkpoint (seq ${checkpoint.seq}) lies beyond upToSeq (${upToSeq}): it cannot be checked.`, 'Leave upToSeq out, or verify up to the checkpoint at least.');
  }
  return checkpoint;
}

function splitHead(text: string): [string | undefined, string | undefined] {
  const at = text.trim().indexOf(':');
  return at < 0 ? [text.trim(), undefined] : [text.trim().slice(0, at), text.trim().slice(at + 1)];
}
