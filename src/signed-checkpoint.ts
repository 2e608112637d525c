// Signed checkpoints: every stream's head, signed with an Ed25519 key that the database never sees.
//
// Why: a checkpoint (src/checkpoint.ts) catches a chain rewritten with recomputed hashes only if the
// heads file itself was not rewritten too, and whoever can rewrite the database can often reach the
// file as well. A signature made with a key kept away from the database (the compliance team's, an
// HSM export, an auditor's) lets anyone holding the public key tell that the heads are the ones
// recorded then. The document format is specified in docs/FORMAT.md ("Signed checkpoints") so that it
// can be checked without chainlog: the signature covers the UTF-8 bytes of the `heads` string exactly
// as they stand in the file, so no JSON is ever re-serialized before checking.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, sign, verify } from 'node:crypto';
import { parseCheckpoint, type Checkpoint } from './checkpoint.js';
import { ChainlogSignatureError, invalidArgument } from './errors.js';

/** The value of `format` in a signed checkpoint document, version 1. */
export const SIGNED_CHECKPOINT_FORMAT = 'chainlog-signed-checkpoint-1';

/** A stream's recorded head, as `streams()` lists it (only these three fields are read). */
export interface HeadEntry {
  stream: string;
  headSeq: string;
  headHash: string;
}

/** The heads a checkpoint records: the text that is signed is this object as JSON. */
export interface CheckpointHeads {
  /** When the heads were taken (ISO 8601, UTC). */
  takenAt: string;
  streams: HeadEntry[];
}

/** A signed checkpoint document, as written to a file (JSON). */
export interface SignedCheckpoint {
  format: typeof SIGNED_CHECKPOINT_FORMAT;
  /** The signing key's fingerprint: `sha256:` and the SHA-256 of its public key (DER SubjectPublicKeyInfo), hex. */
  key: string;
  /** The Ed25519 signature of the UTF-8 bytes of `heads`, base64. */
  signature: string;
  /** CheckpointHeads as JSON text: the signed bytes. */
  heads: string;
}

/** A checked signed checkpoint: the heads by stream, when they were taken, and who signed them. */
export interface OpenedCheckpoint {
  checkpoints: Map<string, Checkpoint>;
  takenAt: string;
  key: string;
}

/** A key as PEM text (or its Buffer), or a KeyObject. */
export type KeyInput = string | Buffer | KeyObject;

/** A new Ed25519 key pair as PEM: the private key (PKCS #8) signs, the public key (SPKI) checks. */
export function generateSigningKeys(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** `sha256:` and the hex SHA-256 of the public key's DER SubjectPublicKeyInfo (a private key gives its public key's). */
export function keyFingerprint(key: KeyInput): string {
  const der = publicKeyOf(key, 'key').export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(der).digest('hex')}`;
}

/**
 * Signs the heads (as `streams()` returns them) with an Ed25519 private key. Streams without events
 * yet (head 0) are left out: they hold nothing to check.
 */
export function signCheckpoint(streams: readonly HeadEntry[], privateKey: KeyInput, options: { takenAt?: Date } = {}): SignedCheckpoint {
  const key = ed25519(privateKey, 'private key', (k) => (k instanceof KeyObject ? k : createPrivateKey(k)));
  if (key.type !== 'private') throw invalidArgument('signCheckpoint() needs the private key; the public key only checks.');
  const heads: CheckpointHeads = {
    takenAt: (options.takenAt ?? new Date()).toISOString(),
    streams: streams
      .filter((s) => s.headSeq !== '0')
      // Checked as they will be read back: a bad head must not be signed.
      .map((s) => ({ stream: s.stream, headSeq: s.headSeq, headHash: parseCheckpoint({ seq: s.headSeq, hash: s.headHash }, `the head of stream "${s.stream}"`).hash })),
  };
  const text = JSON.stringify(heads);
  return {
    format: SIGNED_CHECKPOINT_FORMAT,
    key: keyFingerprint(key),
    signature: sign(null, Buffer.from(text, 'utf8'), key).toString('base64'),
    heads: text,
  };
}

/**
 * Checks a signed checkpoint (the document, or its JSON text) against the signer's public key, then
 * reads its heads. Throws ChainlogSignatureError (CHAINLOG_BAD_SIGNATURE) when another key signed it
 * or anything signed was changed, and ChainlogInvalidArgumentError when it is not such a document.
 */
export function openSignedCheckpoint(document: unknown, publicKey: KeyInput, source = 'the signed checkpoint'): OpenedCheckpoint {
  const doc = typeof document === 'string' ? parseJson(document, source) : document;
  if (!isSignedCheckpoint(doc)) {
    throw invalidArgument(
      `${source} is not a signed checkpoint: expected an object with "format": "${SIGNED_CHECKPOINT_FORMAT}" and string fields key, signature and heads.`,
      '`chainlog checkpoint --key KEY` writes one.',
    );
  }
  const key = publicKeyOf(publicKey, 'public key');
  const given = keyFingerprint(key);
  if (doc.key !== given) {
    throw badSignature(
      `${source} says it was signed by key ${doc.key}, not by the public key given (${given}).`,
      'Check it with the public key of the key that signed it; if that is the one given, the file was changed.',
    );
  }
  const signature = Buffer.from(doc.signature, 'base64');
  // Node's base64 decoder skips what it cannot read (whitespace, URL-safe letters, text after the
  // padding); the OpenSSL check in docs/FORMAT.md does not. Only the exact encoding chainlog writes
  // passes, so that both checkers agree on every file.
  const exact = signature.toString('base64') === doc.signature;
  if (!exact || signature.length !== 64 || !verify(null, Buffer.from(doc.heads, 'utf8'), key, signature)) {
    throw badSignature(
      `${source}: the signature does not match its heads: the file was changed after it was signed.`,
      'Its heads cannot be trusted; get the checkpoint again from where it was kept.',
    );
  }
  // Signed, so written by chainlog: a malformed body here means a signer outside chainlog.
  const heads = parseJson(doc.heads, `${source} (its heads)`) as Partial<CheckpointHeads> | null;
  if (typeof heads?.takenAt !== 'string') throw invalidArgument(`${source}: its heads have no "takenAt".`);
  return { checkpoints: checkpointsFromHeads(heads, source), takenAt: heads.takenAt, key: doc.key };
}

/** Is this a signed checkpoint document (by its shape; the signature is not checked)? */
export function isSignedCheckpoint(doc: unknown): doc is SignedCheckpoint {
  const d = doc as Partial<SignedCheckpoint> | null;
  return typeof d === 'object' && d !== null && d.format === SIGNED_CHECKPOINT_FORMAT
    && typeof d.key === 'string' && typeof d.signature === 'string' && typeof d.heads === 'string';
}

/**
 * The heads of a `{ streams: [{ stream, headSeq, headHash }] }` object (what `chainlog streams --json`
 * writes, and the signed part of a signed checkpoint), by stream. A stream with head 0 is skipped.
 */
export function checkpointsFromHeads(doc: unknown, source: string): Map<string, Checkpoint> {
  const streams = (doc as { streams?: unknown } | null)?.streams;
  if (!Array.isArray(streams)) {
    throw invalidArgument(`${source}: expected an object with a "streams" list, as \`chainlog streams --json\` writes.`);
  }
  const heads = new Map<string, Checkpoint>();
  for (const [i, entry] of streams.entries()) {
    const { stream, headSeq, headHash } = (entry ?? {}) as { stream?: unknown; headSeq?: unknown; headHash?: unknown };
    if (typeof stream !== 'string' || stream === '') throw invalidArgument(`${source}: streams[${i}] has no "stream" name.`);
    if (heads.has(stream)) throw invalidArgument(`${source}: stream "${stream}" is listed twice.`);
    // A stream listed with no event yet (head 0) holds nothing to check against.
    if (headSeq === '0') continue;
    heads.set(stream, parseCheckpoint({ seq: String(headSeq), hash: String(headHash) }, `${source}: the head of stream "${stream}"`));
  }
  return heads;
}

function badSignature(message: string, hint: string): ChainlogSignatureError {
  return new ChainlogSignatureError(`${message} ${hint}`, { code: 'CHAINLOG_BAD_SIGNATURE', hint });
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`${source}: cannot read it as JSON: ${(e as Error).message}.`);
  }
}

function publicKeyOf(key: KeyInput, what: string): KeyObject {
  return ed25519(key, what, (k) => (k instanceof KeyObject && k.type === 'public' ? k : createPublicKey(k)));
}

/** The key as a KeyObject, refused unless it is an Ed25519 key. */
function ed25519(key: KeyInput, what: string, load: (k: string | Buffer | KeyObject) => KeyObject): KeyObject {
  let loaded: KeyObject;
  try {
    loaded = load(key);
  } catch (e) {
    throw invalidArgument(`The ${what} cannot be read: ${(e as Error).message.replace(/\.$/, '')}.`, 'Give a PEM file as `chainlog keygen` writes it.');
  }
  if (loaded.asymmetricKeyType !== 'ed25519') {
    throw invalidArgument(`The ${what} is ${loaded.asymmetricKeyType ?? 'not an asymmetric'} key; checkpoints are signed with Ed25519.`, '`chainlog keygen NAME` makes an Ed25519 key pair.');
  }
  return loaded;
}
