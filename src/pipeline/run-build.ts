// `farm build`: check the context, plan, connect and probe workers, then every arch in parallel
// (./build-arch.ts: its builder runs on its workers' queues, fetch, verify, record, upload).

import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import type { LoadedInventory, Worker } from '../inventory/schema.ts';
import { makeBuildId } from '../naming.ts';
import { planBuild, type BuildPlan } from '../plan/plan.ts';
import { buildSource } from '../plan/source.ts';
import { StateStore, type BuildState } from '../records/state.ts';
import { overallStatus } from '../records/status.ts';
import { buildManifest, type Manifest } from '../records/manifest.ts';
import { writeJsonAtomic } from '../core/atomic.ts';
import type { Reporter } from '../ui/reporter.ts';
import { formatBytes } from '../ui/table.ts';
import { WorkerPool } from './scheduler.ts';
import { buildArch } from './build-arch.ts';
import type { Builder } from '../../workers/builder.ts';
import { BibBuilder } from '../../workers/bib/bib-builder.ts';
import { measureContext } from '../../workers/podman/context.ts';
import type { WorkerTransport } from '../../workers/transport.ts';
import { probeWorker, type ProbeResult } from '../../workers/probe.ts';
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
  // The context is checked (a symlink out of it is refused) before anything is recorded.
  const source = buildSource(loaded);
  const context = await measureContext(source, signal);
  log.info(`context ${source.contextDir}: ${context.files} files, ${formatBytes(context.bytes)}${context.ignoreFile ? ` (${context.ignoreFile} honoured)` : ''}`);
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
        if (!pool.pick(archPlan.arch)) {
          const reason = `no healthy worker for ${archPlan.arch} (${archPlan.workers.map((w) => w.name).join(', ')}): see the probe results above`;
          alog.error(reason);
          await store.setArchStep(archPlan.arch, 'failed', { error: reason });
          return;
        }
        await buildArch(archPlan, { loaded, source, builder, pool, transports, store, dir, uploads: opts.uploads, signal, alog });
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
