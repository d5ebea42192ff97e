// `farm workers check`: SSH, arch, podman, free space and builder image of every worker.

import type { CommandContext } from 'citty';
import { FarmError, errorMessage } from '../../core/errors.ts';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import type { Arch } from '../../core/arch.ts';
import type { Inventory, LoadedInventory, Pool, Worker } from '../../inventory/schema.ts';
import { imageSpec } from '../../plan/source.ts';
import { checkArches, resolveImage } from '../../registry/resolve.ts';
import { renderTable } from '../../ui/table.ts';
import { connectWorker } from '../../../workers/ssh/session.ts';
import { workerEndpoint } from '../../inventory/worker-endpoint.ts';
import { probeWorker } from '../../../workers/probe.ts';
import { providerFor } from '../../pipeline/pools.ts';
import { AWS_POOL_PROVIDER } from '../../../workers/pools/types.ts';
import type { workersCheckArgs } from '../commands/workers.ts';
import { io, out } from '../io.ts';
import { inventoryArchesArg, loadFromArgs } from './args.ts';

/** One worker's state, as --json prints it. */
export interface WorkerReport {
  name: string;
  arch: string;
  address: string;
  reachable: boolean;
  healthy: boolean;
  /** `uname -m` on the worker. */
  machine?: string;
  podman?: string;
  freeGiB?: { storage?: number; output?: number };
  builderImage?: string;
  /** An image source: the manifest digest this worker's arch pulls. */
  sourceImage?: string;
  problems: string[];
  /** What a healthy entry's row says instead of the probe's facts (pools). */
  details?: string;
}

/**
 * An image source, checked once from the coordinator as a build reads it: the list, the
 * credentials and each arch's entry. Per arch: the digest its workers pull, or the problem (the
 * registry's own answer) that would stop its build.
 */
async function sourceCheck(loaded: LoadedInventory, arches: readonly Arch[], signal: AbortSignal): Promise<Map<Arch, { digest?: string; problem?: string }>> {
  const spec = imageSpec(loaded);
  const out = new Map<Arch, { digest?: string; problem?: string }>();
  if (!spec) return out;
  const explain = (e: unknown) => `source image ${errorMessage(e)}${e instanceof FarmError && e.hint ? ` (${e.hint})` : ''}`;
  try {
    const image = await resolveImage(spec, process.env, signal);
    for (const a of arches) {
      const d = image.arches[a];
      if (d) out.set(a, { digest: d });
      else {
        try {
          checkArches(image, [a]);
        } catch (e) {
          out.set(a, { problem: explain(e) });
        }
      }
    }
  } catch (e) {
    if (e instanceof FarmError && e.code === 'ABORTED') throw e;
    for (const a of arches) out.set(a, { problem: explain(e) });
  }
  return out;
}

function withSource(r: WorkerReport, s: { digest?: string; problem?: string } | undefined): WorkerReport {
  if (!s) return r;
  if (s.problem) return { ...r, healthy: false, problems: [...r.problems, s.problem] };
  return { ...r, ...(s.digest ? { sourceImage: s.digest } : {}) };
}

async function examine(w: Worker, inventory: Inventory, signal: AbortSignal): Promise<WorkerReport> {
  const base = { name: w.name, arch: w.arch, address: `${w.host}:${w.port}` };
  let t;
  try {
    t = await connectWorker(workerEndpoint(w), { signal, connectTimeoutMs: inventory.settings.connect_timeout_s * 1000 });
  } catch (e) {
    if (e instanceof FarmError && e.code === 'ABORTED') throw e;
    const hint = e instanceof FarmError && e.hint ? ` (${e.hint})` : '';
    return { ...base, reachable: false, healthy: false, problems: [errorMessage(e) + hint] };
  }
  try {
    const p = await probeWorker(t, inventory, signal);
    return {
      ...base,
      reachable: true,
      healthy: p.healthy,
      ...(p.machine !== undefined ? { machine: p.machine } : {}),
      ...(p.podmanVersion !== undefined ? { podman: p.podmanVersion } : {}),
      freeGiB: p.freeGiB,
      ...(p.builderImage !== undefined ? { builderImage: p.builderImage } : {}),
      problems: p.problems,
    };
  } catch (e) {
    if (e instanceof FarmError && e.code === 'ABORTED') throw e;
    return { ...base, reachable: true, healthy: false, problems: [errorMessage(e)] };
  } finally {
    await t.close();
  }
}

/** A pool without taking a VM: its allocator program must be there (VMs are checked per build). */
async function examinePool(p: Pool): Promise<WorkerReport> {
  const s = p.settings;
  if (s.provider === AWS_POOL_PROVIDER) {
    const base = { name: p.name, arch: p.arch, address: `pool (aws, up to ${p.max})` };
    try {
      // Credentials and the base image, without launching anything.
      const what = await providerFor(p).check!();
      return { ...base, reachable: true, healthy: true, problems: [], details: `${what}; each VM is prepared and probed when a build takes it` };
    } catch (e) {
      return { ...base, reachable: false, healthy: false, problems: [`${errorMessage(e)}: check the AWS credentials (AWS_* environment, profile) and pools.${p.name}.settings.image`] };
    }
  }
  const programs = s.provider === 'resalloc' ? [s.command[0]!] : [s.allocate[0]!, s.release[0]!];
  const problems: string[] = [];
  for (const prog of programs) {
    const found = prog.includes('/') ? [prog] : (process.env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, prog));
    const ok = await Promise.any(found.map((f) => access(f, constants.X_OK))).then(() => true, () => false);
    if (!ok) problems.push(`${s.provider} program ${prog} is not ${prog.includes('/') ? 'an executable file' : 'on PATH'}: install it${s.provider === 'resalloc' ? ' (dnf install resalloc)' : ''} or fix pools.${p.name}.settings`);
  }
  const base = { name: p.name, arch: p.arch, address: `pool (${s.provider}, up to ${p.max})`, reachable: problems.length === 0, healthy: problems.length === 0, problems };
  return problems.length ? base : { ...base, details: `${programs.join(', ')} found; each VM is prepared and probed when a build takes it` };
}

function row(r: WorkerReport): string[] {
  const status = !r.reachable ? 'UNREACHABLE' : r.healthy ? 'healthy' : 'UNHEALTHY';
  const facts = `podman ${r.podman ?? '?'}, free ${r.freeGiB?.storage ?? '?'}/${r.freeGiB?.output ?? '?'} GiB, builder ${r.builderImage ?? '?'}${r.sourceImage ? `, source ${r.sourceImage.slice(0, 19)}` : ''}`;
  return [r.name, r.arch, r.address, status, r.healthy ? (r.details ?? facts) : r.problems.join('; ')];
}

export async function check({ args }: CommandContext<typeof workersCheckArgs>): Promise<void> {
  const loaded = await loadFromArgs(args);
  const arches = inventoryArchesArg(args.arch, loaded);
  const workers = loaded.inventory.workers.filter((w) => arches.includes(w.arch));
  const [source, examined] = await Promise.all([sourceCheck(loaded, arches, io().signal), Promise.all(workers.map((w) => examine(w, loaded.inventory, io().signal)))]);
  const reports = examined.map((r, i) => withSource(r, source.get(workers[i]!.arch)));
  reports.push(...(await Promise.all(loaded.inventory.pools.filter((p) => arches.includes(p.arch)).map(examinePool))));
  if (args.json) out(JSON.stringify(reports, null, 2));
  else out(renderTable(['WORKER', 'ARCH', 'ADDRESS', 'STATUS', 'DETAILS'], reports.map(row)));
  if (reports.some((r) => !r.healthy)) io().exitCode = 1;
}
