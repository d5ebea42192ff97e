// The service's run and the build's record (src/service/runner.ts): the run learns its build id
// from the job's onBuildId callback (no log text is read), and a job that throws after its record
// exists has that record closed, never left running; one that recorded its end is left alone.

import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadInventory } from '../../src/inventory/load.ts';
import type { JobOptions } from '../../src/pipeline/job.ts';
import type { BuildOutcome } from '../../src/pipeline/run-build.ts';
import { planBuild } from '../../src/plan/plan.ts';
import { BuildRecord, initialState } from '../../src/records/build-record.ts';
import { serviceSettings } from '../../src/service/config.ts';
import { makeExecute } from '../../src/service/runner.ts';
import { ServiceStore, type RunRecord } from '../../src/service/store.ts';
import { serveInventory } from '../support/serve.ts';

const BUILD = '20261121t101500z';

async function setup(job: (opts: JobOptions) => Promise<BuildOutcome>) {
  const dir = await mkdtemp(join(tmpdir(), 'farm-runner-'));
  const inventoryPath = await serveInventory('  listen: 127.0.0.1:0', dir);
  const loaded = await loadInventory(inventoryPath);
  const settings = serviceSettings(loaded);
  const execute = makeExecute({
    inventoryPath,
    settings,
    store: await ServiceStore.open(settings.stateDir),
    env: {},
    stream: new PassThrough().resume(),
    log: () => undefined,
    runJob: job,
    inspect: async () => undefined,
  });
  const run: RunRecord = { id: 'r1', reasons: [{ kind: 'api', detail: 'test', at: new Date().toISOString(), force: true }], queuedAt: new Date().toISOString(), status: 'running' };
  const told: string[] = [];
  const go = () => execute(run, { signal: new AbortController().signal, setBuildId: (id) => told.push(id) });
  /** Starts a build's record as runBuild does, and tells the job's callback. */
  const start = async (opts: JobOptions) => {
    const dir = join(settings.buildsDir, BUILD);
    await mkdir(dir, { recursive: true });
    const record = await BuildRecord.create(dir, initialState(planBuild(opts.loaded!, ['s390x'], BUILD), { inventory: inventoryPath }));
    opts.onBuildId?.(BUILD);
    return record;
  };
  return { settings, go, told, start };
}

describe('the service runner and the build record', () => {
  it('links the run to its build through onBuildId, and closes a record the job left running', async () => {
    const t = await setup(async (opts) => {
      const record = await t.start(opts);
      await record.buildingStarted('s390x', [['qcow2']]);
      throw new Error('the key could not be written');
    });
    await expect(t.go()).rejects.toThrow('the key could not be written');
    expect(t.told).toEqual([BUILD]);
    const after = (await BuildRecord.open(join(t.settings.buildsDir, BUILD))).current;
    expect(after.status).toBe('failed');
    expect(after.arches.s390x).toMatchObject({ step: 'failed', error: 'the key could not be written' });
  });

  it('leaves a record that recorded its end as it is', async () => {
    const t = await setup(async (opts) => {
      const record = await t.start(opts);
      await record.archFailed('s390x', 'no space');
      await record.finish(false);
      throw new Error('after the end');
    });
    await expect(t.go()).rejects.toThrow('after the end');
    const after = (await BuildRecord.open(join(t.settings.buildsDir, BUILD))).current;
    expect(after.status).toBe('failed');
    expect(after.arches.s390x!.error).toBe('no space');
  });
});
