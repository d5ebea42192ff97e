// The build's record from runBuild's side, over a real context and builds directory (no worker is
// reachable, so every arch ends at "no healthy worker"): the plan is made once, under the id the
// build claimed, and the preflight sees that very plan; a failed preflight gives the claim back and
// leaves the disk as it was; the caller hears the build id the moment its record exists. And
// `farm upload` on a damaged record refuses it by name and changes nothing.

import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { inventorySchema, type LoadedInventory } from '../../src/inventory/schema.ts';
import { runBuild } from '../../src/pipeline/run-build.ts';
import { uploadBuild } from '../../src/pipeline/upload-build.ts';
import type { UploadStage } from '../../src/pipeline/uploads.ts';
import { TargetUploads } from '../../src/pipeline/upload-stage.ts';
import { planBuild, type BuildPlan } from '../../src/plan/plan.ts';
import { BuildRecordError } from '../../src/records/state-schema.ts';
import type { BuildState } from '../../src/records/state.ts';
import { Reporter } from '../../src/ui/reporter.ts';

const NOW = new Date('2026-11-21T10:15:00Z');
const BASE_ID = '20261121t101500z';

async function inventory(): Promise<LoadedInventory> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-run-'));
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'Containerfile'), 'FROM scratch\n');
  return {
    file: join(dir, 'farm.yaml'),
    dir,
    inventory: inventorySchema.parse({
      version: 1,
      source: { containerfile: 'src/Containerfile', context: 'src' },
      workers: [{ name: 'w', host: '127.0.0.1', arch: 'x86_64' }],
      arches: { x86_64: { types: ['qcow2'], targets: [{ kind: 'openstack', cloud: 'lab', image_type: 'qcow2' }] } },
    }),
  };
}

const quiet = () => new Reporter({ stream: new Writable({ write: (_c, _e, cb) => cb() }) });

/** An uploads stage that remembers the plans it was asked to check. */
function stage(fail: boolean): UploadStage & { plans: BuildPlan[] } {
  const plans: BuildPlan[] = [];
  return {
    plans,
    async preflight(plan) {
      plans.push(plan);
      if (fail) throw new FarmError('UPLOAD', 'preflight failed for 1 target(s), nothing was built');
    },
    async uploadArch() {},
  };
}

const unreachable = async (): Promise<never> => {
  throw new FarmError('SSH', 'connection refused');
};

describe('runBuild and its record', () => {
  it('plans once, under the claimed id, and says the id as soon as the record exists', async () => {
    const loaded = await inventory();
    const builds = join(loaded.dir, 'builds');
    await mkdir(join(builds, BASE_ID), { recursive: true }); // an earlier build in the same second
    const uploads = stage(false);
    const told: Array<{ id: string; state: BuildState }> = [];
    const outcome = await runBuild({
      loaded,
      arches: ['x86_64'],
      signal: new AbortController().signal,
      reporter: quiet(),
      connect: unreachable,
      uploads,
      now: NOW,
      onBuildId: (id) => {
        // Synchronous read: the record is on disk before the id is told.
        told.push({ id, state: JSON.parse(readFileSync(join(builds, id, 'state.json'), 'utf8')) as BuildState });
      },
    });
    expect(outcome.buildId).toBe(`${BASE_ID}-2`);
    expect(uploads.plans.map((p) => p.buildId)).toEqual([`${BASE_ID}-2`]);
    expect(outcome.state.arches.x86_64!.imageName).toBe(uploads.plans[0]!.arches[0]!.imageName);
    expect(uploads.plans[0]!.arches[0]!.imageName).toBe(planBuild(loaded, ['x86_64'], `${BASE_ID}-2`).arches[0]!.imageName);
    expect(told.map((t) => [t.id, t.state.status])).toEqual([[`${BASE_ID}-2`, 'running']]);
    expect(outcome.state.status).toBe('failed');
    expect(outcome.state.arches.x86_64).toMatchObject({ step: 'failed', error: expect.stringMatching(/no healthy worker for x86_64/) });
    expect(JSON.parse(await readFile(join(outcome.dir, 'state.json'), 'utf8'))).toEqual(outcome.state);
  });

  it('a failed preflight gives the claim back: no build directory, no builds directory, no id told', async () => {
    const loaded = await inventory();
    const uploads = stage(true);
    const told: string[] = [];
    await expect(
      runBuild({ loaded, arches: ['x86_64'], signal: new AbortController().signal, reporter: quiet(), connect: unreachable, uploads, now: NOW, onBuildId: (id) => told.push(id) }),
    ).rejects.toThrow(/preflight failed/);
    expect(uploads.plans.map((p) => p.buildId)).toEqual([BASE_ID]);
    expect(told).toEqual([]);
    expect(await readdir(loaded.dir)).toEqual(['src']);
  });

  it('a failed preflight in a builds directory that existed keeps it and the other builds', async () => {
    const loaded = await inventory();
    const builds = join(loaded.dir, 'builds');
    await mkdir(join(builds, '20261120t000000z'), { recursive: true });
    await expect(
      runBuild({ loaded, arches: ['x86_64'], signal: new AbortController().signal, reporter: quiet(), connect: unreachable, uploads: stage(true), now: NOW }),
    ).rejects.toThrow(/preflight failed/);
    expect(await readdir(builds)).toEqual(['20261120t000000z']);
  });
});

describe('farm upload on a damaged record', () => {
  it('refuses it by name before any target is asked, and changes nothing', async () => {
    const loaded = await inventory();
    const ok = await runBuild({ loaded, arches: ['x86_64'], signal: new AbortController().signal, reporter: quiet(), connect: unreachable, now: NOW });
    const file = join(ok.dir, 'state.json');
    const listing = (await readdir(ok.dir, { recursive: true })).sort();
    for (const text of ['{"version": 1, "build', JSON.stringify({ ...ok.state, version: 2 }), JSON.stringify({ ...ok.state, arches: { x86_64: { step: 'fetched' } } })]) {
      await writeFile(file, text);
      let asked = 0;
      const targets = new TargetUploads(loaded, {}, () => {
        asked++;
        throw new Error('no uploader should be made');
      });
      const err = await uploadBuild(loaded, ok.buildId, targets, new AbortController().signal, quiet()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BuildRecordError);
      expect((err as BuildRecordError).message).toContain(file);
      expect((err as BuildRecordError).hint).toBeTruthy();
      expect(asked).toBe(0);
      expect(await readFile(file, 'utf8')).toBe(text);
      expect((await readdir(ok.dir, { recursive: true })).sort()).toEqual(listing);
    }
  });
});
