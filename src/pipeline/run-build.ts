// `farm build`: check the context, plan, connect and probe workers, then every arch in parallel
// (./build-arch.ts: its builder runs on its workers' queues, fetch, verify, record, upload).

import { mkdir, rmdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import type { LoadedInventory, Worker } from '../inventory/schema.ts';
import { makeBuildId } from '../naming.ts';
import { planBuild, type BuildPlan } from '../plan/plan.ts';
import { buildSource, imageSpec } from '../plan/source.ts';
import { checkArches, pullRefFor, resolveImage, type ResolvedImage } from '../registry/resolve.ts';
import { BuildRecord, initialState } from '../records/build-record.ts';
import type { BuildState } from '../records/state.ts';
import type { Manifest } from '../records/manifest.ts';
import type { Reporter } from '../ui/reporter.ts';
import { formatBytes } from '../ui/table.ts';
import { WorkerPool, poolDemand } from './scheduler.ts';
import { PoolLeases } from './pools.ts';
import { sweepPools } from './sweep.ts';
import { prepareWorker } from '../../workers/prepare.ts';
import { buildArch } from './build-arch.ts';
import { publishFor, publishList } from './publish.ts';
import type { Builder, BuildRequest } from '../../workers/builder.ts';
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
  /** An image source's list, read once already (by the build key); else it is read here. */
  image?: ResolvedImage | undefined;
  /** Where registry credentials and certs are looked up (default process.env). */
  env?: NodeJS.ProcessEnv | undefined;
  /** Told the build's id as soon as its record exists (before any worker is asked). */
  onBuildId?: ((buildId: string) => void) | undefined;
}

export interface BuildOutcome {
  buildId: string;
  dir: string;
  state: BuildState;
  manifest: Manifest;
}

interface Claim {
  id: string;
  dir: string;
  /** Undoes the claim (and a builds directory it made), leaving the disk as it was. */
  release(): Promise<void>;
}

/** Claims builds/<id> atomically; a second build in the same second gets a -2 suffix. */
async function claimBuildDir(buildsDir: string, baseId: string): Promise<Claim> {
  const made = await mkdir(buildsDir, { recursive: true });
  for (let n = 1; n < 100; n++) {
    const id = n === 1 ? baseId : `${baseId}-${n}`;
    const dir = join(buildsDir, id);
    try {
      await mkdir(dir);
      const release = async () => {
        await rmdir(dir);
        // Only directories this claim made, innermost first, and only while empty.
        for (let d = buildsDir; made && d.length >= made.length; d = dirname(d)) {
          if (!(await rmdir(d).then(() => true, () => false))) break;
        }
      };
      return { id, dir, release };
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
  const source = buildSource(loaded);
  const spec = imageSpec(loaded);
  // An image source's list is read once, here or by the key, and an arch it lacks refused before
  // anything is recorded or any worker asked; a Containerfile's context is checked (a symlink out
  // of it is refused).
  const image = spec ? (opts.image ?? (await resolveImage(spec, opts.env ?? process.env, signal))) : undefined;
  if (image) {
    checkArches(image, opts.arches);
    log.info(`image ${image.image}: ${image.digest} (${Object.entries(image.arches).map(([a, d]) => `${a} ${d.slice(7, 19)}`).join(', ')})`);
  } else {
    const context = await measureContext(source, signal);
    log.info(`context ${source.contextDir}: ${context.files} files, ${formatBytes(context.bytes)}${context.ignoreFile ? ` (${context.ignoreFile} honoured)` : ''}`);
  }
  const pullFor = (arch: Arch): BuildRequest['pull'] =>
    image
      ? {
          ref: pullRefFor(image, arch),
          tlsVerify: image.tlsVerify,
          auth: image.credentials ? { username: image.credentials.username, password: image.credentials.password, serveraddress: image.ref.registry } : undefined,
        }
      : undefined;
  const publish = image ? undefined : await publishFor(loaded, opts.env ?? process.env, signal);
  // The id is claimed first so the plan is made once, under the names the build will have.
  const claim = await claimBuildDir(buildsDir, baseId);
  const { id: buildId, dir } = claim;
  const plan = planBuild(loaded, opts.arches, buildId);
  // Targets are checked before anything is recorded or any worker starts: a missing credential
  // fails in seconds with nothing changed (the claim is given back), not after the builds.
  try {
    await opts.uploads?.preflight(plan, signal);
  } catch (err) {
    await claim.release().catch(() => undefined);
    throw err;
  }

  for (const u of plan.unbuildable) reporter.scoped(u.arch).error(u.reason);
  const sourceRecord = image ? { image: image.image, digest: image.digest, arches: image.arches } : undefined;
  const store = await BuildRecord.create(dir, initialState(plan, { inventory: loaded.file, key: opts.key, trigger: opts.trigger, source: sourceRecord }));
  opts.onBuildId?.(buildId);
  log.info(`build ${buildId}: ${plan.arches.map((a) => `${a.arch} (${a.types.join(', ')})`).join(', ') || 'nothing to build'}`);

  const transports = new Map<string, WorkerTransport>();
  const leases = new PoolLeases(store, reporter);
  // VMs an earlier run left (killed before it gave them back) go back before new ones are taken.
  if (inv.pools.length) {
    await sweepPools(loaded, {
      onItem: (i) => i.outcome !== 'left' && log.info(`sweep: ${i.pool} ${i.provider} ${i.id} of build ${i.build} (${i.reason}): ${i.outcome}${i.error ? `: ${i.error}` : ''}`),
    }).catch((err: unknown) => log.warn(`sweep: ${errorMessage(err)}`));
  }
  try {
    const healthy = await connectAndProbe(plan, opts, transports);
    healthy.push(...(await takePoolVMs(plan, opts, healthy, leases, transports)));
    const pool = new WorkerPool(healthy);

    await Promise.all(
      plan.arches.map(async (archPlan) => {
        const alog = reporter.scoped(archPlan.arch);
        reporter.logTo(archPlan.arch, join(dir, archPlan.arch, 'build.log'));
        if (!pool.pick(archPlan.arch)) {
          const reason = `no healthy worker for ${archPlan.arch} (${[...archPlan.workers, ...archPlan.pools].map((w) => w.name).join(', ')}): see the probe results above`;
          alog.error(reason);
          await store.archFailed(archPlan.arch, reason);
          return;
        }
        await buildArch(archPlan, { loaded, source, builder, pool, transports, store, dir, uploads: opts.uploads, pull: pullFor(archPlan.arch), publish, signal, alog });
      }),
    );
    if (publish && !signal.aborted) await publishList(publish, [...plan.arches.map((a) => a.arch), ...plan.unbuildable.map((u) => u.arch)], store, signal, log);
  } catch (err) {
    // Whatever stopped the run, the record ends: arches not done are failed, never left running.
    const reason = signal.aborted ? 'cancelled' : errorMessage(err);
    await store.failUnfinished(reason);
    await store.finish(signal.aborted);
    throw err;
  } finally {
    await Promise.all([...transports.values()].map((t) => t.close().catch(() => undefined)));
    // Every pool VM goes back, whatever ended the build (Ctrl-C and SIGTERM abort the signal).
    await leases.releaseAll();
  }

  const manifest = await store.finish(signal.aborted);
  log.info(`build ${buildId} ${store.current.status}; records in ${dir}`);
  return { buildId, dir, state: store.current, manifest };
}

/** Pool VMs for the arches that need them; a `prefer: pool` arch that got its VMs leaves its
 *  static workers out (they were only the fallback). */
async function takePoolVMs(plan: BuildPlan, opts: BuildOptions, healthy: Worker[], leases: PoolLeases, transports: Map<string, WorkerTransport>): Promise<Worker[]> {
  const taken: Worker[] = [];
  await Promise.all(
    poolDemand(plan.arches, healthy).map(async (d) => {
      const got: Worker[] = [];
      for (let i = 0; i < d.count; i++) {
        const vm = await leases.take(d.arch, d.pools, (w, signal) => opts.connect(w, { signal }), (w, t) => checkWorker(w, t, opts), opts.signal);
        if (!vm) break;
        transports.set(vm.worker.name, vm.transport);
        got.push(vm.worker);
      }
      if (got.length && d.staticFallback) {
        for (const w of healthy.filter((h) => h.arch === d.arch)) {
          healthy.splice(healthy.indexOf(w), 1);
          await transports.get(w.name)?.close().catch(() => undefined);
          transports.delete(w.name);
        }
      }
      taken.push(...got);
    }),
  );
  return taken;
}

/** Prepares the worker (when it asks for it) and probes it; false (logged) when it is unusable. */
async function checkWorker(worker: Worker, transport: WorkerTransport, opts: BuildOptions): Promise<boolean> {
  const wlog = opts.reporter.scoped(worker.name);
  const inv = opts.loaded.inventory;
  if (worker.prepare) {
    const p = worker.prepare;
    await prepareWorker(
      transport,
      {
        data_volume: p.data_volume,
        tmpfs: p.tmpfs,
        podman_socket: p.podman_socket,
        builder_image: p.pull_builder ? { image: inv.builder.image, pull: inv.builder.pull } : undefined,
      },
      opts.signal,
      (st) => wlog.info(`prepare: ${st.step}: ${st.detail}${st.changed ? '' : ' (unchanged)'}`),
    );
  }
  const probe: ProbeResult = await probeWorker(transport, inv, opts.signal);
  if (!probe.healthy) {
    wlog.warn(`skipped: ${probe.problems.join('; ')}`);
    return false;
  }
  wlog.info(`healthy: ${probe.machine}, podman ${probe.podmanVersion}, free ${probe.freeGiB.storage} GiB storage / ${probe.freeGiB.output} GiB output, builder ${probe.builderImage}`);
  return true;
}

async function connectAndProbe(plan: BuildPlan, opts: BuildOptions, transports: Map<string, WorkerTransport>): Promise<Worker[]> {
  const workers = plan.arches.flatMap((a) => a.workers);
  const results = await Promise.all(
    workers.map(async (worker): Promise<Worker | undefined> => {
      const wlog = opts.reporter.scoped(worker.name);
      let transport: WorkerTransport | undefined;
      try {
        transport = await opts.connect(worker, { signal: opts.signal });
        if (!(await checkWorker(worker, transport, opts))) {
          await transport.close();
          return undefined;
        }
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
