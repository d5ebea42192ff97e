import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InlineHasher, ThreadHasher, type Hasher } from '../../workers/fetch/hasher.ts';

const MiB = 1024 * 1024;

/** A file described as holes and data, in order. */
type Piece = { zeros: number } | { data: Buffer[] };

function reference(pieces: Piece[]): string {
  const h = createHash('sha256');
  for (const p of pieces) {
    if ('zeros' in p) h.update(Buffer.alloc(p.zeros));
    else for (const b of p.data) h.update(b);
  }
  return h.digest('hex');
}

async function feed(hasher: Hasher, pieces: Piece[]): Promise<string> {
  for (const p of pieces) {
    if ('zeros' in p) await hasher.zeros(p.zeros);
    else await hasher.update(p.data);
  }
  return hasher.digest();
}

describe('hashers', () => {
  const pieces: Piece[] = [
    { zeros: 0 },
    { data: [randomBytes(1000), randomBytes(3)] },
    { zeros: 5 * MiB + 17 },
    { data: [randomBytes(2 * MiB)] },
    { zeros: 1 },
    { data: [Buffer.alloc(0), randomBytes(64)] },
    { zeros: MiB },
  ];

  it('the inline and the thread hasher agree with a plain sha256 over holes and data', async () => {
    const want = reference(pieces);
    expect(await feed(new InlineHasher(), pieces)).toBe(want);
    expect(await feed(new ThreadHasher(), pieces)).toBe(want);
  });

  it('the thread hasher keeps order over more batches than it lets be in flight', async () => {
    const many: Piece[] = [];
    for (let i = 0; i < 40; i++) many.push({ data: [randomBytes(2 * MiB)] }, { zeros: 3 * MiB });
    const hasher = new ThreadHasher();
    expect(await feed(hasher, many)).toBe(reference(many));
  });

  it('the hash of an empty file', async () => {
    expect(await new ThreadHasher().digest()).toBe(createHash('sha256').digest('hex'));
  });

  it('a disposed thread hasher refuses further work', async () => {
    const hasher = new ThreadHasher();
    await hasher.update([randomBytes(10)]);
    hasher.dispose();
    expect(() => hasher.update([randomBytes(10)])).toThrow(/hash/);
  });
});
