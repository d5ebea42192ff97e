// Preparation of a worker before its first build, declarative and idempotent (what Copr's
// prepare-worker does by hand): a data volume formatted and mounted, /run and /tmp as tmpfs of
// the given sizes (bib fills them), the podman socket enabled, the builder image present. Each
// step looks first and changes only what differs, so a second run changes nothing. A device that
// holds a filesystem is never formatted unless the setting says `format: force`.

import { FarmError } from '../src/core/errors.ts';
import type { WorkerTransport } from './transport.ts';

export interface PrepareSettings {
  data_volume?: { device: string; mount: string; fs: 'ext4' | 'xfs'; format: 'if-blank' | 'force' } | undefined;
  tmpfs?: { run?: string | undefined; tmp?: string | undefined } | undefined;
  podman_socket: boolean;
  builder_image?: { image: string; pull: 'always' | 'missing' | 'never' | 'newer' } | undefined;
}

export interface PrepareStep {
  step: string;
  changed: boolean;
  detail: string;
}

/** Runs the steps in order; the first failure throws WORKER_UNHEALTHY naming the step and why. */
export async function prepareWorker(
  t: WorkerTransport,
  s: PrepareSettings,
  signal: AbortSignal,
  onStep: (step: PrepareStep) => void = () => undefined,
): Promise<PrepareStep[]> {
  const done: PrepareStep[] = [];
  const step = async (name: string, fn: () => Promise<Omit<PrepareStep, 'step'>>) => {
    let r: Omit<PrepareStep, 'step'>;
    try {
      r = await fn();
    } catch (err) {
      if (signal.aborted) throw err;
      throw new FarmError('WORKER_UNHEALTHY', `preparation of ${t.worker.name} failed at ${name}: ${(err as Error).message}`);
    }
    const one = { step: name, ...r };
    done.push(one);
    onStep(one);
  };
  const sh = async (argv: string[]) => t.exec(argv, { signal, check: false });
  const must = async (argv: string[]) => {
    const r = await sh(argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} exited with code ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join('; ')}`);
    return r.stdout;
  };

  const dv = s.data_volume;
  if (dv) {
    await step(`data volume ${dv.device} on ${dv.mount}`, async () => {
      const dev = (await must(['readlink', '-f', '--', dv.device])).trim();
      const test = await sh(['test', '-b', dev]);
      if (test.code !== 0) throw new Error(`${dv.device} is not a block device on the worker`);
      const at = await sh(['findmnt', '-n', '-o', 'SOURCE', '--mountpoint', dv.mount]);
      if (at.code === 0) {
        // Stacked mounts list bottom first: the last line is what the path shows.
        const source = at.stdout.trim().split('\n').at(-1)!;
        if (source === dev) return { changed: false, detail: `already mounted` };
        throw new Error(`${dv.mount} already has ${source} mounted, not ${dv.device}: unmount it or fix data_volume.mount`);
      }
      const elsewhere = await sh(['findmnt', '-n', '-o', 'TARGET', '--source', dev]);
      if (elsewhere.code === 0) throw new Error(`${dv.device} is mounted on ${elsewhere.stdout.trim().split('\n').join(', ')}: unmount it or fix data_volume.device`);
      // blkid -p probes the device itself: exit 2 means no signature at all (a blank disk).
      const probe = await sh(['blkid', '-p', '-o', 'value', '-s', 'TYPE', '--', dev]);
      const held = probe.code === 0 ? probe.stdout.trim() || 'a signature' : probe.code === 2 ? '' : undefined;
      if (held === undefined) throw new Error(`blkid -p ${dv.device} exited with code ${probe.code}: ${probe.stderr.trim()}`);
      let formatted = false;
      if (held === '' || dv.format === 'force') {
        await must(dv.fs === 'xfs' ? ['mkfs.xfs', '-q', '-f', '--', dev] : ['mkfs.ext4', '-q', '-F', '--', dev]);
        formatted = true;
      } else if (held !== dv.fs && !['ext4', 'ext3', 'ext2', 'xfs', 'btrfs'].includes(held)) {
        throw new Error(`${dv.device} holds ${held}, which is never formatted without format: force in data_volume`);
      }
      await must(['mkdir', '-p', '--', dv.mount]);
      await must(['mount', '--', dev, dv.mount]);
      return { changed: true, detail: formatted ? `${held ? `${held} replaced (format: force), ` : ''}formatted ${dv.fs} and mounted` : `holds ${held}: mounted as it is (never formatted)` };
    });
  }

  for (const [mount, size] of [['/run', s.tmpfs?.run], ['/tmp', s.tmpfs?.tmp]] as const) {
    if (!size) continue;
    await step(`tmpfs ${mount} size ${size}`, async () => {
      const want = sizeBytes(size);
      const cur = await sh(['findmnt', '-n', '-o', 'FSTYPE,OPTIONS', '--mountpoint', mount]);
      const [fstype, options = ''] = cur.code === 0 ? cur.stdout.trim().split('\n').at(-1)!.split(/\s+/) : [];
      if (fstype === 'tmpfs') {
        const m = /(?:^|,)size=(\d+[kmgKMG]?)/.exec(options);
        if (m && sizeBytes(m[1]!) === want) return { changed: false, detail: 'already that size' };
        await must(['mount', '-o', `remount,size=${size}`, '--', mount]);
        return { changed: true, detail: `remounted (was ${m ? m[1] : 'unbounded'})` };
      }
      if (mount === '/run') throw new Error(`/run is ${fstype ?? 'not a mount'}, not tmpfs`);
      await must(['mount', '-t', 'tmpfs', '-o', `size=${size},mode=1777,nosuid,nodev`, 'tmpfs', mount]);
      return { changed: true, detail: `mounted (was ${fstype ?? 'part of its parent'})` };
    });
  }

  if (s.podman_socket) {
    await step('podman socket', async () => {
      const systemd = (await sh(['test', '-d', '/run/systemd/system'])).code === 0;
      if (systemd) {
        const en = await sh(['systemctl', 'is-enabled', 'podman.socket']);
        const act = await sh(['systemctl', 'is-active', 'podman.socket']);
        if (en.stdout.trim() === 'enabled' && act.stdout.trim() === 'active') return { changed: false, detail: 'enabled and active' };
        await must(['systemctl', 'enable', '--now', 'podman.socket']);
        return { changed: true, detail: 'enabled and started' };
      }
      // No systemd (a container host, the lab): the socket must be there already.
      if ((await sh(['test', '-S', t.worker.podman_socket])).code === 0) return { changed: false, detail: `${t.worker.podman_socket} listening (no systemd)` };
      throw new Error(`no systemd and no socket at ${t.worker.podman_socket}`);
    });
  }

  const bi = s.builder_image;
  if (bi) {
    await step(`builder image ${bi.image}`, async () => {
      const exists = (await sh(['podman', 'image', 'exists', bi.image])).code === 0;
      if (exists && bi.pull !== 'always') return { changed: false, detail: 'present' };
      if (bi.pull === 'never') throw new Error('not on the worker and builder.pull is never');
      await must(['podman', 'pull', '-q', bi.image]);
      return { changed: true, detail: 'pulled' };
    });
  }
  return done;
}

/** "3G", "8g", "3145728k", "512M" or bytes, as mount's size= takes them (1024-based). */
export function sizeBytes(v: string): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(v.trim());
  if (!m) throw new Error(`size ${JSON.stringify(v)}: use a number with k, M or G, e.g. 3G`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}
