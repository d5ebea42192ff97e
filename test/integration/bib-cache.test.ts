// bib's caches on a static worker (workers/bib/cache.ts): the osbuild store and rpm metadata
// persist across builds through the worker's cache dir, mounted into each builder run; after the
// runs the cache is measured and emptied when over its bound. The lab's stand-in bib leaves 1 MiB
// per run in the store and says how many earlier runs it finds there.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { farm } from '../support/cli.ts';
import { ensureLab, labExec, labInventoryVariant } from '../support/lab.ts';
import type { Manifest } from '../../src/records/manifest.ts';

const HOST = 'lab-x86_64';
const DIR = `/var/lib/farm/cache-test-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  await ensureLab();
});
afterAll(async () => {
  await labExec(HOST, ['rm', '-rf', '--', DIR]);
});

async function buildWithCache(maxGiB: number): Promise<string> {
  const v = await labInventoryVariant((doc) => {
    const w = doc.workers.find((x: { arch: string }) => x.arch === 'x86_64');
    w.cache = { dir: DIR, max_gib: maxGiB };
    doc.arches.x86_64.types = ['raw'];
  });
  const r = await farm(['build', '--arch', 'x86_64', '--no-upload', '--json', '--inventory', v.file]);
  expect(r.code, r.stderr).toBe(0);
  const id = (JSON.parse(r.stdout) as Manifest).last_run_uuid;
  return readFile(join(v.dir, 'builds', id, 'x86_64', 'build.log'), 'utf8');
}

const storeFiles = async () => (await labExec(HOST, ['find', `${DIR}/store`, '-type', 'f'])).split('\n').filter(Boolean);

describe("bib's caches on a static worker", () => {
  it('persist across builds, mounted at /store and /rpmmd, and are emptied once over their bound', async () => {
    const first = await buildWithCache(20);
    expect(first).toMatch(/store: \/store holds 0 earlier run\(s\)/);
    expect(first).toMatch(/rpmmd: \/rpmmd holds 0 earlier run\(s\)/);
    expect(first).toMatch(new RegExp(`cache ${DIR}: 0\\.00 GiB, kept \\(bound 20 GiB\\)`));
    expect(await storeFiles()).toHaveLength(1);

    const second = await buildWithCache(20);
    expect(second).toMatch(/store: \/store holds 1 earlier run\(s\)/);
    expect(await storeFiles()).toHaveLength(2);

    // 2 MiB of store is over a 1.5 MiB bound: emptied after the build that used it.
    const third = await buildWithCache(0.0015);
    expect(third).toMatch(/store: \/store holds 2 earlier run\(s\)/);
    expect(third).toMatch(new RegExp(`cache ${DIR}: [\\d.]+ GiB is over its bound of 0\\.0015 GiB: emptied`));
    expect(await storeFiles()).toEqual([]);
    // The next build starts from an empty cache and works.
    expect(await buildWithCache(20)).toMatch(/store: \/store holds 0 earlier run\(s\)/);
  });
});
