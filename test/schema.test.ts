import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { schemaSnapshot } from '../src/schema-snapshot.js';
import { useChainlogDatabase } from './support/db.js';

const db = useChainlogDatabase();

describe('the installed schema', () => {
  it('matches sql/schema.snapshot.txt (run `npm run schema:snapshot` after changing sql/)', async () => {
    const expected = readFileSync(new URL('../sql/schema.snapshot.txt', import.meta.url), 'utf8');
    expect(await schemaSnapshot(db.pool)).toBe(expected);
  });
});
