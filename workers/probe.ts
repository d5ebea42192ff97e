// Worker health, checked by `farm workers check` and before every build: the field's failures are
// a wrong-arch host, podman not answering, and "no space left on device" mid-build.

import type Docker from 'dockerode';
import { UNAME_MACHINE } from '../src/core/arch.ts';
import { errorMessage } from '../src/core/errors.ts';
import type { BuilderSettings } from './builder.ts';
import type { WorkerTransport } from './transport.ts';
import { podmanClient } from './podman/client.ts';
import { imagePresent } from './podman/pull.ts';
import { smokeFor, type SmokeInventory } from './smoke/settings.ts';
import { smokeProblems } from './smoke/smoke.ts';

export interface ProbeResult {
  worker: string;
  healthy: boolean;
  problems: string[];
  machine?: string;
  podmanVersion?: string;
  freeGiB: { storage?: number; output?: number };
  builderImage?: 'present' | 'will pull' | 'missing';
}

const GiB = 1024 ** 3;

/** Parses `df -Pk` output: one line per path after the header; column 4 is available KiB. */
export function parseDfAvailable(stdout: string): number[] {
  return stdout
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => Number(line.trim().split(/\s+/)[3]) * 1024);
}

export async function probeWorker(
  transport: WorkerTransport,
  inventory: { builder: Pick<BuilderSettings, 'image' | 'pull'> } & SmokeInventory,
  signal: AbortSignal,
  docker: Docker = podmanClient(transport),
): Promise<ProbeResult> {
  const w = transport.worker;
  const result: ProbeResult = { worker: w.name, healthy: false, problems: [], freeGiB: {} };

  const uname = await transport.exec(['uname', '-m'], { signal });
  result.machine = uname.stdout.trim();
  if (result.machine !== UNAME_MACHINE[w.arch]) {
    result.problems.push(`uname -m says ${result.machine}, but the inventory declares arch ${w.arch}: fix workers.${w.name}.arch or the host`);
  }

  try {
    const version = (await docker.version()) as { Version?: string; Components?: Array<{ Name: string; Version: string }> };
    result.podmanVersion = version.Components?.find((c) => /podman/i.test(c.Name))?.Version ?? version.Version;
  } catch (err) {
    result.problems.push(
      `podman API at ${w.podman_socket} does not answer (${errorMessage(err)}): run \`systemctl enable --now podman.socket\` on the worker or fix podman_socket`,
    );
  }

  // The output dir is the farm's own; creating it lets df measure the filesystem it will use.
  await transport.exec(['mkdir', '-p', '--', w.output_dir], { signal, check: false });
  const df = await transport.exec(['df', '-Pk', '--', w.storage, w.output_dir], { signal, check: false });
  if (df.code !== 0) {
    result.problems.push(`df failed for ${w.storage} and ${w.output_dir}: ${df.stderr.trim()}`);
  } else {
    const [storage, output] = parseDfAvailable(df.stdout);
    result.freeGiB = { storage: round(storage! / GiB), output: round(output! / GiB) };
    if (storage! / GiB < w.min_free_gib.storage) {
      result.problems.push(
        `only ${result.freeGiB.storage} GiB free in container storage ${w.storage} (need ${w.min_free_gib.storage}): free space (podman system prune) or mount a bigger volume there`,
      );
    }
    if (output! / GiB < w.min_free_gib.output) {
      result.problems.push(`only ${result.freeGiB.output} GiB free in output dir ${w.output_dir} (need ${w.min_free_gib.output})`);
    }
  }

  if (result.podmanVersion) {
    const present = await imagePresent(docker, inventory.builder.image).catch(() => false);
    result.builderImage = present ? 'present' : inventory.builder.pull === 'never' ? 'missing' : 'will pull';
    if (result.builderImage === 'missing') {
      result.problems.push(`builder image ${inventory.builder.image} is not on the worker and builder.pull is never`);
    }
  }

  // Smoke checks boot the images here: QEMU, its firmware and the seed's tools must be present.
  if (smokeFor(inventory, w.arch)) result.problems.push(...(await smokeProblems(transport, w.arch, signal)));

  result.healthy = result.problems.length === 0;
  return result;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
