// Signed checkpoints: the heads, signed with a key the database never sees. What they are for: a
// superuser rewrites a chain with recomputed hashes and its recorded head, and also rewrites the
// heads file kept beside it; only a signature made elsewhere tells the forged file from the real one.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createChainlog, type VerifyArgs } from '../src/client.js';
import { ChainlogInvalidArgumentError, ChainlogSignatureError } from '../src/errors.js';
import { generateSigningKeys, keyFingerprint, openSignedCheckpoint, signCheckpoint, type SignedCheckpoint } from '../src/signed-checkpoint.js';
import { useChainlogDatabase } from './support/db.js';
import { asAttacker, chainRecomputedFrom, seedStream } from './support/tamper.js';

const db = useChainlogDatabase();
const log = () => createChainlog({ pool: db.pool });
const keys = generateSigningKeys();
const HEAD = { stream: 'acme', headSeq: '12', headHash: 'ab'.repeat(32) };

/** The document with its `heads` text changed by `edit`, signature and key left as they were. */
function withHeads(doc: SignedCheckpoint, edit: (heads: string) => string): SignedCheckpoint {
  return { ...doc, heads: edit(doc.heads) };
}

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('signCheckpoint() and openSignedCheckpoint()', () => {
  it('sign the heads and read them back only with the signer\'s public key', () => {
    const takenAt = new Date('2026-11-24T10:00:00Z');
    const doc = signCheckpoint([HEAD, { stream: 'empty', headSeq: '0', headHash: '00'.repeat(32) }], keys.privateKeyPem, { takenAt });
    expect(doc).toEqual({
      format: 'chainlog-signed-checkpoint-1',
      key: keyFingerprint(keys.publicKeyPem),
      signature: expect.stringMatching(/^[A-Za-z0-9+/]{86}==$/),
      // A stream without events has nothing to check and is left out.
      heads: JSON.stringify({ takenAt: '2026-11-24T10:00:00.000Z', streams: [HEAD] }),
    });
    const opened = openSignedCheckpoint(JSON.stringify(doc), keys.publicKeyPem);
    expect(opened).toEqual({ checkpoints: new Map([['acme', { seq: 12, hash: 'ab'.repeat(32) }]]), takenAt: '2026-11-24T10:00:00.000Z', key: doc.key });
  });

  it.skipIf(!hasOpenssl())('write a document that OpenSSL checks as docs/FORMAT.md describes, without chainlog', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'chainlog-signed-'));
    try {
      const doc = signCheckpoint([HEAD], keys.privateKeyPem);
      writeFileSync(path.join(dir, 'pub.pem'), keys.publicKeyPem);
      writeFileSync(path.join(dir, 'heads.txt'), doc.heads);
      writeFileSync(path.join(dir, 'heads.sig'), Buffer.from(doc.signature, 'base64'));
      const check = (file: string) =>
        execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', 'pub.pem', '-rawin', '-in', file, '-sigfile', 'heads.sig'], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
      expect(check('heads.txt')).toMatch(/Signature Verified Successfully/);
      writeFileSync(path.join(dir, 'changed.txt'), doc.heads.replace('"12"', '"11"'));
      expect(() => check('changed.txt')).toThrow();
      // The key fingerprint is the SHA-256 of the DER public key, as `openssl pkey -pubin -outform DER` writes it.
      const der = execFileSync('openssl', ['pkey', '-pubin', '-in', 'pub.pem', '-outform', 'DER'], { cwd: dir });
      expect(doc.key).toBe(`sha256:${execFileSync('sha256sum', { input: der, encoding: 'utf8' }).slice(0, 64)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuse a document changed after signing, or signed by another key', () => {
    const doc = signCheckpoint([HEAD], keys.privateKeyPem);
    const moved = withHeads(doc, (h) => h.replace('"12"', '"11"'));
    expect(() => openSignedCheckpoint(moved, keys.publicKeyPem)).toThrow(ChainlogSignatureError);
    expect(() => openSignedCheckpoint(moved, keys.publicKeyPem)).toThrow(/the signature does not match its heads: the file was changed after it was signed/);
    // Even a change that leaves the heads' meaning alone: the signed bytes are the text as it stands.
    expect(() => openSignedCheckpoint(withHeads(doc, (h) => ` ${h}`), keys.publicKeyPem)).toThrow(ChainlogSignatureError);
    expect(() => openSignedCheckpoint({ ...doc, signature: doc.signature.slice(4) }, keys.publicKeyPem)).toThrow(ChainlogSignatureError);
    // The same signature written otherwise, which Node would decode alike but OpenSSL's check refuses.
    const urlSafe = doc.signature.replace(/\+/g, '-').replace(/\//g, '_');
    for (const signature of [`${doc.signature}AAAA`, `${doc.signature.slice(0, 40)}\n${doc.signature.slice(40)}`, urlSafe]) {
      if (signature === doc.signature) continue;
      expect(() => openSignedCheckpoint({ ...doc, signature }, keys.publicKeyPem)).toThrow(ChainlogSignatureError);
    }

    const other = generateSigningKeys();
    const err = (() => {
      try {
        openSignedCheckpoint(doc, other.publicKeyPem);
      } catch (e) {
        return e as ChainlogSignatureError;
      }
    })();
    expect(err).toBeInstanceOf(ChainlogSignatureError);
    expect(err?.code).toBe('CHAINLOG_BAD_SIGNATURE');
    expect(err?.message).toContain(`says it was signed by key ${doc.key}, not by the public key given (${keyFingerprint(other.publicKeyPem)})`);
    // A forger who re-signs with their own key and claims the real key's fingerprint still fails.
    const forged = signCheckpoint([{ ...HEAD, headSeq: '11' }], other.privateKeyPem);
    expect(() => openSignedCheckpoint({ ...forged, key: doc.key }, keys.publicKeyPem)).toThrow(/the signature does not match its heads/);
  });

  it('refuse what is not a signed checkpoint, and keys that are not Ed25519', () => {
    expect(() => openSignedCheckpoint('{"streams": []}', keys.publicKeyPem)).toThrow(ChainlogInvalidArgumentError);
    expect(() => openSignedCheckpoint('not json', keys.publicKeyPem)).toThrow(/cannot read it as JSON/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    expect(() => signCheckpoint([HEAD], rsa.privateKey)).toThrow(/The private key is rsa key; checkpoints are signed with Ed25519/);
    expect(() => signCheckpoint([HEAD], keys.publicKeyPem)).toThrow(ChainlogInvalidArgumentError);
    expect(() => openSignedCheckpoint(signCheckpoint([HEAD], keys.privateKeyPem), 'garbage')).toThrow(/The public key cannot be read/);
    expect(() => signCheckpoint([{ ...HEAD, headHash: 'zz' }], keys.privateKeyPem)).toThrow(/the head of stream "acme" must be SEQ:HASH/);
  });
});

describe('a signed checkpoint of a live database', () => {
  it('catches a chain rewritten with its recorded head, in both verifiers, where verify() alone finds it intact', async () => {
    await seedStream(db.pool, 'sig-a', 5);
    await seedStream(db.pool, 'sig-b', 5);
    const doc = signCheckpoint(await log().streams(), keys.privateKeyPem);
    await seedStream(db.pool, 'sig-a', 3); // grows afterwards: still intact against the checkpoint
    await asAttacker(db.pool, `update chainlog.events set actor = 'mallory' where stream = 'sig-b' and seq = 2; ${chainRecomputedFrom('sig-b', 2)}`);

    const { checkpoints } = openSignedCheckpoint(JSON.stringify(doc), keys.publicKeyPem);
    for (const verify of [(a: VerifyArgs) => log().verify(a), (a: VerifyArgs) => log().verifyOffline({ ...a, workers: 0 })]) {
      expect(await verify({ stream: 'sig-b' })).toMatchObject({ ok: true }); // what the rewrite leaves without it
      expect(await verify({ stream: 'sig-a', checkpoint: checkpoints.get('sig-a') })).toMatchObject({ ok: true, checked: 8 });
      expect(await verify({ stream: 'sig-b', checkpoint: checkpoints.get('sig-b') })).toMatchObject({
        ok: false, firstBadSeq: '5', problem: 'modified',
      });
    }
  });
});
