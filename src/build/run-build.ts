// `farm build`: plan, connect and probe workers, then per arch (in parallel, scheduled on the
// workers' queues) build on a native worker, fetch and verify the disks, record them, remove what
// the build left on the worker, and hand the artifacts to the uploads stage.

import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Arch } from '../arch.ts';
import { FarmError, errorMessage, isAbortError } from '../errors.ts';
import type { LoadedInventory, Worker } from '../inventory/schema.ts';
import { makeBuildId } from '../naming.ts';
import { planBuild, type ArchPlan, type BuildPlan } from '../plan/plan.ts';
import { StateStore, type ArtifactRecord, type BuildState } from '../records/state.ts';
import { overallStatus } from '../records/status.ts';
import { buildManifest, type Manifest } from '../records/manifest.ts';
import { writeJsonAtomic } from '../records/atomic.ts';
import type { Reporter, ScopedReporter } from '../ui/reporter.ts';
import { WorkerPool } from './scheduler.ts';
import type { Builder, BuildResult } from '../../workers/builder.ts';
import { BibBuilder } from '../../workers/bib/bib-builder.ts';
import type { WorkerTransport } from '../../workers/transport.ts';
import { probeWorker, type ProbeResult } from '../../workers/probe.ts';
import { fetchArtifacts } from './fetch-artifacts.ts';
import type { UploadStage } from './uploads.ts';

export type Connect = (worker: Worker, opts: { signal: AbortSignal }) => Promise<WorkerTransport>;

export interface BuildOptions {
  loaded: LoadedInventory;
  arches: Arch[];
  signal: AbortSignal;
  reporter: Reporter;
  connect: Connect;
  builder?: Builder;
  uploads?: UploadStage | undefined;
  now?: Date;
  trigger?: string;
  key?: string;
}

export interface BuildOutcome {
  buildId: string;
  dir: string;
  state: BuildState;
  manifest: Manifest;
}

/** Claims builds/<id> atomically; a second build in the same second gets a -2 suffix. */
async function claimBuildDir(buildsDir: string, baseId: string): Promise<{ id: string; dir: string }> {
  await mkdir(buildsDir, { recursive: true });
  for (let n = 1; n < 100; n++) {
    const id = n === 1 ? baseId : `${baseId}-${n}`;
    const dir = join(buildsDir, id);
    try {
      await mkdir(dir);
      return { id, dir };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new FarmError('STATE', `cannot claim a build directory under ${buildsDir}`);
}

export async function runBuild(opts: BuildOptions): Promise<BuildOutcome> {
  const { loaded, reporter, signal } = opts;
  const inv = loaded.inventory;
  const builder = opts.builder ?? new BibBuilder();
  const log = reporter.scoped('farm');

  const buildsDir = resolve(loaded.dir, inv.settings.builds_dir);
  const baseId = makeBuildId(opts.now ?? new Date());
  // Targets are checked before anything is recorded or any worker starts: a missing credential
  // fails in seconds with nothing changed, not after the builds.
  await opts.uploads?.preflight(planBuild(loaded, opts.arches, baseId), signal);
  const { id: buildId, dir } = await claimBuildDir(buildsDir, baseId);
  const plan = planBuild(loaded, opts.arches, buildId);

  const initial: BuildState = {
    version: 1,
    buildId,
    inventory: loaded.file,
    startedAt: new Date().toISOString(),
    status: 'running',
    ...(opts.key ? { key: opts.key } : {}),
    ...(opts.trigger ? { trigger: opts.trigger } : {}),
    arches: {},
  };
  for (const a of plan.arches) {
    initial.arches[a.arch] = { arch: a.arch, step: 'planned', types: a.types, imageName: a.imageName, artifacts: [], uploads: {}, at: { planned: initial.startedAt } };
  }
  for (const u of plan.unbuildable) {
    initial.arches[u.arch] = { arch: u.arch, step: 'failed', types: [], imageName: '', error: u.reason, artifacts: [], uploads: {}, at: { failed: initial.startedAt } };
    reporter.scoped(u.arch).error(u.reason);
  }
  const store = await StateStore.create(join(dir, 'state.json'), initial);
  log.info(`build ${buildId}: ${plan.arches.map((a) => `${a.arch} (${a.types.join(', ')})`).join(', ') || 'nothing to build'}`);

  const transports = new Map<string, WorkerTransport>();
  try {
    const healthy = await connectAndProbe(plan, opts, transports);
    const pool = new WorkerPool(healthy);

    await Promise.all(
      plan.arches.map(async (archPlan) => {
        const alog = reporter.scoped(archPlan.arch);
        reporter.logTo(archPlan.arch, join(dir, archPlan.arch, 'build.log'));
        const worker = pool.pick(archPlan.arch);
        if (!worker) {
          const reason = `no healthy worker for ${archPlan.arch} (${archPlan.workers.map((w) => w.name).join(', ')}): see the probe results above`;
          alog.error(reason);
          await store.setArchStep(archPlan.arch, 'failed', { error: reason });
          return;
        }
        await pool.run(worker, () => buildArch(archPlan, worker, transports.get(worker.name)!, { ...opts, builder, store, dir, alog }));
      }),
    );
  } catch (err) {
    // Whatever stopped the run, the record ends: arches not done are failed, never left running.
    const reason = signal.aborted ? 'cancelled' : errorMessage(err);
    await store.update((s) => {
      for (const a of Object.values(s.arches)) {
        if (a && a.step !== 'fetched' && a.step !== 'failed') Object.assign(a, { step: 'failed', error: reason });
      }
    });
    await finishBuild(store, dir, signal);
    throw err;
  } finally {
    await Promise.all([...transports.values()].map((t) => t.close().catch(() => undefined)));
  }

  const manifest = await finishBuild(store, dir, signal);
  log.info(`build ${buildId} ${store.current.status}; records in ${dir}`);
  return { buildId, dir, state: store.current, manifest };
}

/** Records the end of a run (build or upload) and writes the manifest next to the state. */
export async function finishBuild(store: StateStore, dir: string, signal: AbortSignal): Promise<Manifest> {
  await store.update((s) => {
    s.finishedAt = new Date().toISOString();
    s.status = signal.aborted ? 'cancelled' : overallStatus(s);
  });
  const manifest = buildManifest(store.current);
  await writeJsonAtomic(join(dir, 'manifest.json'), manifest);
  return manifest;
}

async function connectAndProbe(plan: BuildPlan, opts: BuildOptions, transports: Map<string, WorkerTransport>): Promise<Worker[]> {
  const workers = plan.arches.flatMap((a) => a.workers);
  const results = await Promise.all(
    workers.map(async (worker): Promise<Worker | undefined> => {
      const wlog = opts.reporter.scoped(worker.name);
      let transport: WorkerTransport | undefined;
      try {
        transport = await opts.connect(worker, { signal: opts.signal });
        const probe: ProbeResult = await probeWorker(transport, opts.loaded.inventory, opts.signal);
        if (!probe.healthy) {
          wlog.warn(`skipped: ${probe.problems.join('; ')}`);
          await transport.close();
          return undefined;
        }
        wlog.info(`healthy: ${probe.machine}, podman ${probe.podmanVersion}, free ${probe.freeGiB.storage} GiB storage / ${probe.freeGiB.output} GiB output, builder ${probe.builderImage}`);
        transports.set(worker.name, transport);
        return worker;
      } catch (err) {
        if (opts.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
        const hint = err instanceof FarmError && err.hint ? ` (${err.hint})` : '';
        wlog.warn(`skipped: ${errorMessage(err)}${hint}`);
        await transport?.close().catch(() => undefined);
        return undefined;
      }
    }),
  );
  return results.filter((w): w is Worker => w !== undefined);
}

interface ArchContext extends BuildOptions {
  builder: Builder;
  store: StateStore;
  dir: string;
  alog: ScopedReporter;
}

async function buildArch(plan: ArchPlan, worker: Worker, transport: WorkerTransport, ctx: ArchContext): Promise<void> {
  const { store, alog, signal } = ctx;
  const inv = ctx.loaded.inventory;
  let result: BuildResult | undefined;
  const archDir = join(ctx.dir, plan.arch);
  try {
    await store.setArchStep(plan.arch, 'building', { worker: worker.name });
    alog.info(`building on ${worker.name} (${worker.host}): types ${plan.types.join(', ')} in ${plan.runs.length} builder run(s)`);
    const t0 = Date.now();
    result = await ctx.builder.build(transport, {
      buildId: store.current.buildId,
      arch: plan.arch,
      runs: plan.runs,
      source: {
        contextDir: resolve(ctx.loaded.dir, inv.source.context),
        containerfile: resolve(ctx.loaded.dir, inv.source.containerfile),
        buildArgs: inv.source.build_args,
      },
      builder: { ...inv.builder, configPath: inv.builder.config ? resolve(ctx.loaded.dir, inv.builder.config) : undefined },
      signal,
      onLine: (line) => alog.output(line),
    });
    const buildSeconds = (Date.now() - t0) / 1000;
    await store.setArchStep(plan.arch, 'built', { durations: { build: buildSeconds } });

    await store.setArchStep(plan.arch, 'fetching');
    const t1 = Date.now();
    const artifacts: ArtifactRecord[] = await fetchArtifacts(transport, result, archDir, ctx.dir, plan.imageName, signal, alog);
    const fetchSeconds = (Date.now() - t1) / 1000;
    // Only now, with every file verified, is the arch recorded as fetched.
    await store.setArchStep(plan.arch, 'fetched', { artifacts, durations: { build: buildSeconds, fetch: fetchSeconds } });
    alog.info(`fetched and verified ${artifacts.length} image(s) in ${fetchSeconds.toFixed(1)} s (build ${buildSeconds.toFixed(0)} s)`);
  } catch (err) {
    const aborted = signal.aborted || isAbortError(err);
    const reason = aborted ? 'cancelled' : errorMessage(err);
    alog.error(reason + (err instanceof FarmError && err.hint ? `\n  hint: ${err.hint}` : ''));
    await store.setArchStep(plan.arch, 'failed', { error: reason, artifacts: [] });
    // Nothing unverified stays where it could be taken for a result.
    await removeDisks(archDir);
    await result?.cleanup().catch((e: Error) => alog.warn(e.message));
    return;
  }
  if (!inv.settings.keep_remote) {
    await result.cleanup().then(
      () => alog.info(`removed the build's image and outputs from ${worker.name}`),
      (e: Error) => alog.warn(e.message),
    );
  }
  if (ctx.uploads) await ctx.uploads.uploadArch(plan, store, signal, alog);
}

async function removeDisks(archDir: string): Promise<void> {
  const { readdir } = await import('node:fs/promises');
  const entries = await readdir(archDir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (e.isDirectory()) await rm(join(archDir, e.name), { recursive: true, force: true });
  }
}
