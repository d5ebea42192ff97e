// One arch of a build: its builder runs spread over its healthy workers (each worker builds the
// image once, for the runs placed on it), then every run's disks fetched and verified from the
// worker that wrote them, recorded, removed from the workers, and handed to the uploads stage.
// All or nothing: one failed run stops the others, and the arch records no artifact.

import { readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FarmError, errorMessage, isAbortError } from '../core/errors.ts';
import type { LoadedInventory, Worker } from '../inventory/schema.ts';
import type { ArchPlan } from '../plan/plan.ts';
import type { BuildSource } from '../plan/source.ts';
import type { BuildRecord } from '../records/build-record.ts';
import type { ArtifactRecord } from '../records/state.ts';
import { formatBytes } from '../ui/table.ts';
import type { ScopedReporter } from '../ui/reporter.ts';
import type { Builder, BuildRequest, PreparedWorker, RunOutputs } from '../../workers/builder.ts';
import type { WorkerTransport } from '../../workers/transport.ts';
import { fetchArtifacts } from './fetch-artifacts.ts';
import { publishArch, type Publish } from './publish.ts';
import { smokeStage } from './smoke-stage.ts';
import { allOrNothing, spreadRuns, type WorkerPool } from './scheduler.ts';
import type { UploadStage } from './uploads.ts';

export interface ArchJob {
  loaded: LoadedInventory;
  source: BuildSource;
  builder: Builder;
  pool: WorkerPool;
  transports: ReadonlyMap<string, WorkerTransport>;
  store: BuildRecord;
  /** The build's directory (builds/<id>). */
  dir: string;
  uploads?: UploadStage | undefined;
  /** An image source: what this arch's workers pull instead of building. */
  pull?: BuildRequest['pull'];
  /** publish_image: push the arch's built image from its worker. */
  publish?: Publish | undefined;
  signal: AbortSignal;
  alog: ScopedReporter;
}

export async function buildArch(plan: ArchPlan, job: ArchJob): Promise<void> {
  const { store, alog, signal } = job;
  const inv = job.loaded.inventory;
  const archDir = join(job.dir, plan.arch);
  const workers = job.pool.workersFor(plan.arch);
  // With runs on several workers, each output line says whose it is.
  const tagged = workers.length > 1 && plan.runs.length > 1;
  const output = (worker: Worker) => (line: string) => alog.output(tagged ? `${worker.name}: ${line}` : line);
  const prepared = new Map<string, Promise<PreparedWorker>>();
  /** Removes what the build left on each worker; resolves to the workers left clean. */
  const removeFromWorkers = async (): Promise<string[]> => {
    const clean: string[] = [];
    for (const [name, p] of prepared) {
      const ready = await p.catch(() => undefined); // a failed prepare removed its own leftovers
      await ready?.cleanup().then(
        () => clean.push(name),
        (e: Error) => alog.warn(e.message),
      );
    }
    return clean;
  };

  /** The worker's image, built by the first run placed there and shared by the others. */
  const prepare = (worker: Worker, runSignal: AbortSignal): Promise<PreparedWorker> => {
    let p = prepared.get(worker.name);
    if (!p) {
      p = job.builder.prepare(job.transports.get(worker.name)!, {
        buildId: store.buildId,
        arch: plan.arch,
        source: job.source,
        builder: { ...inv.builder, configPath: inv.builder.config ? resolve(job.loaded.dir, inv.builder.config) : undefined },
        signal: runSignal,
        onLine: output(worker),
        ...(job.pull ? { pull: job.pull } : {}),
      });
      p.then(
        ({ context: c }) => {
          if (c) alog.info(`context sent to ${worker.name}: ${c.files} files, ${formatBytes(c.bytes)} (${c.digest.slice(0, 19)})`);
          else if (job.pull) alog.info(`image ${job.pull.ref} ready on ${worker.name}`);
        },
        () => undefined,
      );
      prepared.set(worker.name, p);
    }
    return p;
  };

  try {
    await store.buildingStarted(plan.arch, plan.runs);
    alog.info(
      `building types ${plan.types.join(', ')} in ${plan.runs.length} builder run(s) on ${workers.map((w) => `${w.name} (${w.host}, up to ${w.max_builds} at once)`).join(', ')}`,
    );
    const t0 = Date.now();
    const runs = await spreadRuns(
      job.pool,
      plan.arch,
      plan.runs.length,
      async (index, worker, runSignal): Promise<RunOutputs> => {
        const types = plan.runs[index]!;
        await store.runStarted(plan.arch, index, types, worker.name);
        const outputs = await (await prepare(worker, runSignal)).run(index, types);
        await store.runBuilt(plan.arch, index);
        return outputs;
      },
      signal,
    );
    const buildSeconds = (Date.now() - t0) / 1000;
    await store.setArchStep(plan.arch, 'built', { durations: { build: buildSeconds } });
    // Each disk boots on its worker before it travels (policy block throws: the arch fails).
    await smokeStage({ inventory: inv, arch: plan.arch, types: plan.types, runs, transports: job.transports, archDir, store, signal, alog });
    // The image is pushed while it is still on a worker that built it (every worker's is the same source).
    if (job.publish) await publishArch(job.publish, plan.arch, await prepared.get(runs[0]!.worker.name)!, store, signal, alog);

    await store.setArchStep(plan.arch, 'fetching');
    const t1 = Date.now();
    // Each worker's outputs come over its own connection, one file after another; workers in parallel.
    const fetched: ArtifactRecord[][] = [];
    const byWorker = new Map<string, number[]>();
    runs.forEach((r, i) => byWorker.set(r.worker.name, [...(byWorker.get(r.worker.name) ?? []), i]));
    await allOrNothing(
      [...byWorker].map(([name, indices]) => async (fetchSignal: AbortSignal) => {
        for (const i of indices) {
          const records = await fetchArtifacts(job.transports.get(name)!, runs[i]!.value, archDir, job.dir, plan.imageName, fetchSignal, alog);
          fetched[i] = records.map((r) => ({ ...r, worker: name }));
        }
      }),
      signal,
    );
    const artifacts = fetched.flat();
    const fetchSeconds = (Date.now() - t1) / 1000;
    // Only now, with every file verified, is the arch recorded as fetched.
    await store.archFetched(plan.arch, artifacts, { build: buildSeconds, fetch: fetchSeconds });
    alog.info(`fetched and verified ${artifacts.length} image(s) in ${fetchSeconds.toFixed(1)} s (build ${buildSeconds.toFixed(0)} s)`);
  } catch (err) {
    const aborted = signal.aborted || isAbortError(err);
    const reason = aborted ? 'cancelled' : errorMessage(err);
    alog.error(reason + (err instanceof FarmError && err.hint ? `\n  hint: ${err.hint}` : ''));
    await store.archFailed(plan.arch, reason);
    // Nothing unverified stays where it could be taken for a result.
    await removeDisks(archDir);
    await removeFromWorkers();
    return;
  }
  if (!inv.settings.keep_remote) {
    const clean = await removeFromWorkers();
    if (clean.length) alog.info(`removed the build's image and outputs from ${clean.join(', ')}`);
  }
  if (job.uploads) await job.uploads.uploadArch(plan, store, signal, alog);
}

async function removeDisks(archDir: string): Promise<void> {
  const entries = await readdir(archDir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (e.isDirectory()) await rm(join(archDir, e.name), { recursive: true, force: true });
  }
}
