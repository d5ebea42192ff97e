// `farm serve` in the test's own process: the real FarmService and its real HTTP server on a free
// loopback port, with the build job stood in for by one that records a build the way runBuild
// does (state.json, a per-arch log, the manifest) and waits on a gate the test opens. The lab
// tests run real builds; these exercise the HTTP surface and the queue around them.

import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { JobOptions } from '../../src/pipeline/job.ts';
import type { BuildOutcome } from '../../src/pipeline/run-build.ts';
import { BuildRecord } from '../../src/records/build-record.ts';
import type { BuildState } from '../../src/records/state.ts';
import { FarmService, type ServiceOptions, type Snapshot } from '../../src/service/service.ts';
import { serveInventory } from './serve.ts';

export interface StandIn {
  service: FarmService;
  base: string;
  port: number;
  dir: string;
  jobs: JobOptions[];
  /** Everything the service logged. */
  log(): string;
  /** Makes the next builds wait until release(). */
  hold(): void;
  release(): void;
  snapshot(): Promise<Snapshot>;
  /** Stops it; the state stays in dir, so start() again resumes with the same history. */
  stop(): Promise<void>;
}

export interface StandInOptions {
  /** The inventory's `service:` section, indented by two spaces. */
  service: string;
  env?: NodeJS.ProcessEnv;
  /** Reuse a stopped stand-in's directory (its state and builds). */
  dir?: string;
  /** More top-level inventory YAML (arches and targets). */
  extra?: string;
  uploaderFactory?: ServiceOptions['uploaderFactory'];
}

export async function startStandIn(opts: StandInOptions): Promise<StandIn> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'farm-serve-standin-')));
  const inventory = await serveInventory(opts.service, dir, opts.extra);
  const jobs: JobOptions[] = [];
  let gate = Promise.resolve();
  let release: () => void = () => undefined;
  let seq = 0;
  let logged = '';
  const stream = new PassThrough();
  stream.on('data', (d: Buffer) => (logged += d.toString()));

  async function fakeJob(job: JobOptions): Promise<BuildOutcome> {
    jobs.push(job);
    const buildId = `20250101t0000${String(seq++).padStart(2, '0')}z`;
    const buildDir = join(dir, 'builds', buildId);
    await mkdir(buildDir, { recursive: true });
    const now = new Date().toISOString();
    const initial: BuildState = {
      version: 1, buildId, inventory: job.inventoryPath, startedAt: now, status: 'running', trigger: job.trigger!, key: job.buildKey!.key,
      arches: { s390x: { arch: 's390x', step: 'planned', types: ['qcow2'], imageName: `farm-${buildId}-s390x`, artifacts: [], uploads: {}, at: { planned: now } } },
    };
    const store = await BuildRecord.create(buildDir, initial);
    job.onBuildId?.(buildId);
    job.reporter.logTo('s390x', join(buildDir, 's390x', 'build.log'));
    job.reporter.scoped('s390x').info('building on the stand-in');
    await Promise.race([gate, new Promise((r) => job.signal.addEventListener('abort', r))]);
    if (job.signal.aborted) {
      await store.archFailed('s390x', 'cancelled');
    } else {
      await store.buildingStarted('s390x', [['qcow2']]);
      await store.setArchStep('s390x', 'built');
      await store.setArchStep('s390x', 'fetching');
      await store.archFetched('s390x', [], { build: 0, fetch: 0 });
      const imageName = store.current.arches.s390x!.imageName;
      await store.uploadStep('s390x', { target: 'openstack', kind: 'openstack', type: 'qcow2' }, 'uploading');
      await store.uploadStep('s390x', { target: 'openstack', kind: 'openstack', type: 'qcow2' }, 'uploaded', {
        images: [{ target: 'openstack', kind: 'openstack', location: 'RegionOne', imageName, imageId: `img-${buildId}`, artifactId: `RegionOne:img-${buildId}`, existing: false }],
      });
    }
    const manifest = await store.finish(job.signal.aborted);
    return { buildId, dir: buildDir, state: store.current, manifest };
  }

  const service = await FarmService.create({
    inventoryPath: inventory,
    listen: '127.0.0.1:0',
    env: opts.env ?? {},
    stream,
    runJob: fakeJob,
    inspect: async () => undefined,
    ...(opts.uploaderFactory ? { uploaderFactory: opts.uploaderFactory } : {}),
  });
  const base = await service.start();
  return {
    service,
    base,
    port: Number(new URL(base).port),
    dir,
    jobs,
    log: () => logged,
    hold() {
      gate = new Promise((r) => (release = r));
    },
    release: () => release(),
    snapshot: async () => (await (await fetch(base + '/api/builds')).json()) as Snapshot,
    async stop() {
      release();
      await service.stop('cancel');
    },
  };
}
