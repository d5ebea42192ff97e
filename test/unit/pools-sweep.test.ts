// The sweep over real records in a temp builds dir, with a provider that records what it is asked
// to give back: a VM whose coordinator is gone or whose lifetime is over goes back (and its record
// says so); one a live build holds within its lifetime stays; --dry-run changes nothing.

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { inlineInventory } from '../support/inline-inventory.ts';
import { planBuild } from '../../src/plan/plan.ts';
import { BuildRecord, initialState } from '../../src/records/build-record.ts';
import { sweepPools } from '../../src/pipeline/sweep.ts';

const pool = (name: string) => ({ name, arch: 'x86_64', lifetime: '1h', settings: { provider: 'resalloc', tags: ['arch_x86_64'] } });

async function setup() {
  const root = await mkdtemp(join(tmpdir(), 'farm-sweep-'));
  const loaded = inlineInventory({ workers: [], pools: [pool('rx')], settings: { builds_dir: join(root, 'builds') } });
  const dir = join(root, 'builds', '20261206t100000z');
  await mkdir(dir, { recursive: true });
  const record = await BuildRecord.create(dir, initialState(planBuild(loaded, ['x86_64'], '20261206t100000z'), { inventory: loaded.file }));
  // A pid that surely ended: a child that has exited and been reaped.
  const dead = await new Promise<number>((resolve) => {
    const c = execFile('true');
    c.on('exit', () => resolve(c.pid!));
  });
  const now = Date.now();
  const at = (agoS: number) => ({ requested: new Date(now - agoS * 1000).toISOString() });
  const base = { pool: 'rx', provider: 'resalloc', arch: 'x86_64' as const, data: '---\nhost: h\n', lifetime_s: 3600 };
  await record.poolAllocation({ ...base, id: '1', at: at(10), owner: { pid: dead, host: hostname() } });
  await record.poolAllocation({ ...base, id: '2', at: at(7200), owner: { pid: process.pid, host: hostname() } });
  await record.poolAllocation({ ...base, id: '3', at: at(10), owner: { pid: process.pid, host: hostname() } });
  await record.poolAllocation({ ...base, id: '4', at: { ...at(10), released: new Date().toISOString() } });
  await record.poolAllocation({ ...base, pool: 'gone', id: '5', at: at(9999) });
  const released: string[] = [];
  const providers = () => ({ pool: 'rx', provider: 'resalloc', allocate: () => Promise.reject(new Error('no')), release: async (a: { id: string }) => void released.push(a.id) });
  return { loaded, dir, released, providers };
}

describe('farm workers sweep', () => {
  it('gives back what a gone coordinator or an ended lifetime left; leaves what a live build holds', async () => {
    const s = await setup();
    const items = await sweepPools(s.loaded, { providers: s.providers });
    expect(items.map((i) => [i.id, i.reason, i.outcome])).toEqual([
      ['1', 'its coordinator is gone', 'given back'],
      ['2', 'past its lifetime', 'given back'],
      ['3', 'in use', 'left'],
      ['5', 'past its lifetime', 'pool not in the inventory'],
    ]);
    expect(s.released).toEqual(['1', '2']);
    const state = (await BuildRecord.open(s.dir)).current;
    expect(state.pools!.filter((p) => p.releasedBy === 'sweep').map((p) => p.id)).toEqual(['1', '2']);
    // The killed run's record is ended, not left running.
    expect(state.status).toBe('failed');
    expect((await sweepPools(s.loaded, { providers: s.providers })).map((i) => i.id)).toEqual(['3', '5']);
  });

  it('--dry-run only says what it would give back', async () => {
    const s = await setup();
    const items = await sweepPools(s.loaded, { providers: s.providers, dryRun: true });
    expect(items.filter((i) => i.outcome === 'would be given back').map((i) => i.id)).toEqual(['1', '2']);
    expect(s.released).toEqual([]);
    expect((await BuildRecord.open(s.dir)).current.status).toBe('running');
  });
});
