// libvirt uploader: the disk becomes a volume in a storage pool of every hypervisor of the
// artifact's arch (a hypervisor runs guests of its own arch only; the others are skipped).
//
// Transport: virsh over the inventory's qemu+ssh:// URI, spawned with an argv (no shell), doing
// what users run by hand today: `vol-create-as`, then `vol-upload --sparse`. Chosen over running
// virsh remotely through the farm's own SSH transport because libvirt's sparse stream protocol
// (libvirt >= 1.3.3) lives in the client library: the local virsh seeks over holes and only the
// data crosses the wire, whereas a remote virsh would need the image on the hypervisor first (an
// extra full copy) or read a pipe (no holes). Host keys are still verified strictly: libvirt's ssh
// transport runs the OpenSSH client named by `command=`, which is a generated wrapper forcing
// StrictHostKeyChecking=yes with the hypervisor's known_hosts (see uri.ts and ssh-wrapper.ts).
//
// - Volume name = the image name exactly, no extension, as users name them today: the format is
//   libvirt's metadata (raw or qcow2), and a re-run finds the volume under the same name.
// - qcow2 artifacts are converted to a sparse raw temp file beside the artifact first when
//   convert_to_raw (default) or image_type raw; a raw artifact is uploaded as is.
// - Idempotent: a volume of the name whose file size equals the image's is the published image;
//   a shorter one is an interrupted upload and is reported, never silently reused or replaced.
// - Failure or cancel: volumes this call created are deleted, temp files removed, and the error
//   names the hypervisor (FarmError UPLOAD, HOST_KEY or SSH; ABORTED when cancelled).
// - Progress: virsh prints none; it is read from /proc of the virsh process (progress.ts).

import { access, constants, realpath, rm, stat } from 'node:fs/promises';
import { FarmError, errorMessage, isAbortError } from '../../src/core/errors.ts';
import { run } from '../../src/core/process.ts';
import type { Arch } from '../../src/core/arch.ts';
import type { LibvirtTarget } from './schema.ts';
import type { Artifact, DiskFormat } from '../../src/core/artifact.ts';
import { NO_JOURNAL, type HalfMade, type HalfMadeResult, type PublishedImage, type RemovesImages, type UploadContext, type Uploader } from '../uploader.ts';
import { wrapError } from '../toolkit/errors.ts';
import { Steps, allOrNothing } from '../toolkit/steps.ts';
import { convertToRaw, imageInfo, rawTempPath } from './convert.ts';
import { HypervisorClient, checkVolumeName, type HypervisorOptions, type Volume } from './hypervisor.ts';
import { displayUri, uriLocation } from './uri.ts';
import type { ImageLifecycle } from '../lifecycle.ts';
import { metadataVolume, writeMetadata } from './metadata.ts';
import { libvirtLifecycle } from './lifecycle.ts';

export { connectUri, displayUri, parseHypervisorUri, uriLocation } from './uri.ts';
export { wrapperScript } from './ssh-wrapper.ts';

export type Hypervisor = LibvirtTarget['hypervisors'][number];

export interface LibvirtUploaderOptions extends HypervisorOptions {
  /** Target name (default target.name, else "libvirt"). */
  name?: string;
  qemuImg?: string;
  /** How often upload progress is read (ms). */
  sampleMs?: number;
  /** An upload whose file offset does not move for this long is killed (ms). */
  stallMs?: number;
  /** Limit for deleting what a failed upload created (ms). */
  cleanupTimeoutMs?: number;
}

/** Hypervisors that take an artifact of `arch`, and the ones skipped. */
export function hypervisorsFor(target: Pick<LibvirtTarget, 'hypervisors'>, arch: Arch): { selected: Hypervisor[]; skipped: Hypervisor[] } {
  const selected = target.hypervisors.filter((h) => h.arch === arch);
  const skipped = target.hypervisors.filter((h) => h.arch !== arch);
  return { selected, skipped };
}

export interface UploadPlan {
  /** Volume format. */
  format: 'raw' | 'qcow2';
  /** qcow2 → raw conversion first. */
  convert: boolean;
  /** Size of the file uploaded (raw: the virtual size), which the volume's file must reach. */
  size: number;
}

/** What gets uploaded for an artifact (pure once the qcow2's virtual size is known). */
export function planUpload(
  target: Pick<LibvirtTarget, 'image_type' | 'convert_to_raw'>,
  disk: { format: DiskFormat; size: number; path: string },
  qcow2VirtualSize?: number,
): UploadPlan {
  if (disk.format === 'raw') return { format: 'raw', convert: false, size: disk.size };
  if (disk.format !== 'qcow2') {
    throw new FarmError('UPLOAD', `libvirt volumes are uploaded from raw or qcow2 disks; ${disk.path} is ${disk.format}`, {
      hint: 'set image_type to qcow2 or raw for this target',
    });
  }
  if (target.convert_to_raw || target.image_type === 'raw') {
    if (qcow2VirtualSize === undefined) throw new Error('planUpload: the qcow2 virtual size is needed for conversion');
    return { format: 'raw', convert: true, size: qcow2VirtualSize };
  }
  return { format: 'qcow2', convert: false, size: disk.size };
}

function isComplete(vol: Volume, plan: UploadPlan): boolean {
  return vol.physical === plan.size && (plan.format !== 'raw' || vol.capacity === plan.size);
}

/** The journal's name for a volume being uploaded. */
export const LIBVIRT_VOLUME = 'libvirt-volume';

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

export function createLibvirtUploader(target: LibvirtTarget, opts: LibvirtUploaderOptions = {}): Uploader & RemovesImages & ImageLifecycle {
  const name = opts.name ?? target.name ?? 'libvirt';
  const pool = target.pool;
  const qemuImgOpts = opts.qemuImg ? { qemuImg: opts.qemuImg } : {};

  const planFor = async (artifact: Artifact, signal: AbortSignal): Promise<UploadPlan> => {
    const d = artifact.disk;
    const needsInfo = d.format === 'qcow2' && (target.convert_to_raw || target.image_type === 'raw');
    const virtual = needsInfo ? (await imageInfo(d.path, { ...qemuImgOpts, signal })).virtualSize : undefined;
    return planUpload(target, d, virtual);
  };

  const published = (c: HypervisorClient, imageName: string, vol: Volume, existing: boolean): PublishedImage => ({
    target: name,
    kind: 'libvirt',
    location: c.location,
    imageName,
    imageId: vol.path,
    artifactId: `${c.location}:${vol.path}`,
    existing,
  });

  const openAll = async (hvs: Hypervisor[], signal: AbortSignal): Promise<HypervisorClient[]> => {
    const settled = await Promise.allSettled(hvs.map((h) => HypervisorClient.open(h, pool, opts, signal)));
    const clients = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(clients.map((c) => c.close()));
      throw failed.reason;
    }
    return clients;
  };

  const incomplete = (c: HypervisorClient, imageName: string, vol: Volume, plan: UploadPlan) =>
    new FarmError(
      'UPLOAD',
      `volume ${imageName} already exists on hypervisor ${c.display} (pool '${pool}') but is ${vol.physical} bytes, not ${plan.size}: an interrupted upload or another image of the same name`,
      { hint: `check it, then remove it (virsh -c ${c.display} vol-delete --pool ${pool} ${imageName}) and run again` },
    );

  async function preflight(signal: AbortSignal): Promise<void> {
    const problems: FarmError[] = [];
    const tool = async (bin: string, args: string[], what: string, hint: string) => {
      try {
        await run([bin, ...args], { timeoutMs: 30_000, code: 'UPLOAD', signal });
      } catch (err) {
        problems.push(new FarmError('UPLOAD', `${what} is not usable: ${errorMessage(err)}`, { hint }));
      }
    };
    await tool(opts.virsh ?? 'virsh', ['--version'], 'virsh', 'install libvirt-clients (Debian/Ubuntu) or libvirt-client (Fedora)');
    if (target.image_type === 'qcow2' && target.convert_to_raw) {
      await tool(opts.qemuImg ?? 'qemu-img', ['--version'], 'qemu-img (for convert_to_raw)', 'install qemu-utils (Debian/Ubuntu) or qemu-img (Fedora)');
    }
    await Promise.all(
      target.hypervisors.map(async (hv) => {
        const who = displayUri(hv.uri);
        for (const [key, file] of [['identity_file', hv.identity_file], ['known_hosts', hv.known_hosts]] as const) {
          if (file === undefined) continue;
          try {
            await access(file, constants.R_OK);
          } catch {
            problems.push(new FarmError('UPLOAD', `${key} ${file} of hypervisor ${who} cannot be read`, { hint: `fix the ${key} path in the inventory` }));
            return;
          }
        }
        let client: HypervisorClient | undefined;
        try {
          client = await HypervisorClient.open(hv, pool, opts, signal);
          const state = await client.poolState(signal);
          if (state === 'missing') {
            problems.push(
              new FarmError('UPLOAD', `storage pool '${pool}' does not exist on hypervisor ${who}`, {
                hint: `create it there: virsh pool-define-as ${pool} dir --target /var/lib/libvirt/images && virsh pool-start ${pool} && virsh pool-autostart ${pool}`,
              }),
            );
          } else if (state === 'inactive') {
            problems.push(new FarmError('UPLOAD', `storage pool '${pool}' on hypervisor ${who} is not active`, { hint: `start it: virsh pool-start ${pool} (and pool-autostart ${pool})` }));
          }
        } catch (err) {
          if (signal.aborted || isAbortError(err)) throw new FarmError('ABORTED', 'cancelled');
          problems.push(err instanceof FarmError ? err : new FarmError('UPLOAD', `hypervisor ${who}: ${errorMessage(err)}`));
        } finally {
          await client?.close();
        }
      }),
    );
    if (problems.length === 1) throw problems[0]!;
    if (problems.length > 1) {
      throw new FarmError('UPLOAD', `${problems.length} problems with libvirt target ${name}:\n  ${problems.map((p) => p.message).join('\n  ')}`, {
        hint: problems.map((p) => p.hint).filter(Boolean).join('; '),
      });
    }
  }

  /** Non-empty only when every hypervisor of the arch holds the complete volume (else upload()
   *  publishes to the missing ones and reports the others as existing). */
  async function find(imageName: string, artifact: Artifact, signal: AbortSignal): Promise<PublishedImage[]> {
    checkVolumeName(imageName);
    const { selected } = hypervisorsFor(target, artifact.arch);
    if (selected.length === 0) return [];
    const plan = await planFor(artifact, signal);
    const clients = await openAll(selected, signal);
    try {
      const found = await Promise.all(
        clients.map(async (c) => {
          const vol = await c.lookup(imageName, signal);
          return vol && isComplete(vol, plan) ? published(c, imageName, vol, true) : undefined;
        }),
      );
      return found.every((f) => f !== undefined) ? (found as PublishedImage[]) : [];
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  }

  async function upload(artifact: Artifact, imageName: string, ctx: UploadContext): Promise<PublishedImage[]> {
    const { signal } = ctx;
    checkVolumeName(imageName);
    const { selected, skipped } = hypervisorsFor(target, artifact.arch);
    for (const h of skipped) ctx.log(`skipping hypervisor ${displayUri(h.uri)}: it runs ${h.arch} guests, the image is ${artifact.arch}`);
    if (selected.length === 0) {
      throw new FarmError('UPLOAD', `libvirt target ${name} has no ${artifact.arch} hypervisor`, { hint: `add a hypervisor with arch: ${artifact.arch}` });
    }
    const plan = await planFor(artifact, signal);
    const clients = await openAll(selected, signal);
    const results: PublishedImage[] = [];
    const journal = ctx.journal ?? NO_JOURNAL;
    const steps = new Steps({
      signal,
      log: ctx.log,
      wrap: (step, err) => wrapError(err, { step, signal }),
      cleanupTimeoutMs: opts.cleanupTimeoutMs ?? 120_000,
      leftoverHint: `Remove it by hand: virsh -c <hypervisor> vol-delete --pool ${pool} ${imageName}.`,
    });
    steps.current = `upload of ${imageName} to libvirt target ${name}`;
    let temp: string | undefined;
    try {
      const todo: HypervisorClient[] = [];
      await Promise.all(
        clients.map(async (c) => {
          const vol = await c.lookup(imageName, signal);
          if (!vol) todo.push(c);
          else if (isComplete(vol, plan)) {
            ctx.log(`${imageName} already on ${c.display} (${vol.path})`);
            results.push(published(c, imageName, vol, true));
          } else throw incomplete(c, imageName, vol, plan);
        }),
      );
      if (todo.length === 0) return results;

      let source = artifact.disk.path;
      if (plan.convert) {
        temp = rawTempPath(artifact.disk.path);
        ctx.log(`converting ${artifact.disk.name} to sparse raw (${gib(plan.size)} virtual) for faster guest boot`);
        ctx.onProgress?.({ done: 0, total: plan.size, sent: 0, phase: 'convert' });
        await convertToRaw(artifact.disk.path, temp, {
          ...qemuImgOpts,
          signal,
          onFraction: (f) => ctx.onProgress?.({ done: Math.round(f * plan.size), total: plan.size, sent: 0, phase: 'convert' }),
        });
        source = temp;
      }
      const st = await stat(source);
      if (st.size !== plan.size) {
        throw new FarmError('UPLOAD', `${source} is ${st.size} bytes, expected ${plan.size}: the artifact changed or the conversion is incomplete`);
      }
      const real = await realpath(source);
      const dataBytes = st.blocks * 512;
      ctx.log(
        `uploading ${imageName} (${plan.format}, ${gib(st.size)} apparent, ${mib(dataBytes)} data) to pool '${pool}' on ${todo.map((c) => c.display).join(', ')}`,
      );

      // The samples of /proc are the pace of the reports (sampleMs): no throttle in front.
      const total = plan.size * todo.length;
      const done = new Map<HypervisorClient, number>();
      const sent = new Map<HypervisorClient, number>();
      const report = () => {
        const sum = (m: Map<HypervisorClient, number>) => [...m.values()].reduce((a, b) => a + b, 0);
        ctx.onProgress?.({ done: sum(done), total, sent: sum(sent), phase: 'upload' });
      };
      report();
      // One failure stops the uploads to the other hypervisors too: the call is all or nothing.
      const uploaded = await allOrNothing(
        todo,
        async (c, stop) => {
          const t0 = Date.now();
          // Recorded before it exists: a run killed mid-upload leaves a volume a rerun removes.
          const entry = await journal.begin({ kind: LIBVIRT_VOLUME, location: c.location, name: imageName, detail: { pool, bytes: String(plan.size) } });
          steps.onCleanup(
            `volume ${imageName} on ${c.display}`,
            async (cleanup) => ((await c.delete(imageName, cleanup)) ? `removed the incomplete volume ${imageName} from ${c.display}` : false),
            entry,
          );
          await c.create(imageName, plan.format, stop);
          await c.upload(imageName, source, real, plan.size, stop, {
            ...(opts.sampleMs ? { sampleMs: opts.sampleMs } : {}),
            ...(opts.stallMs ? { stallMs: opts.stallMs } : {}),
            onSample: (s) => {
              if (s.position !== undefined) done.set(c, s.position);
              if (s.written !== undefined) sent.set(c, s.written);
              report();
            },
          });
          // The last /proc sample can predate the end of a fast upload: at least the data went.
          done.set(c, plan.size);
          sent.set(c, Math.max(sent.get(c) ?? 0, dataBytes));
          report();
          const vol = await c.lookup(imageName, stop);
          if (!vol || !isComplete(vol, plan)) {
            throw new FarmError('UPLOAD', `after upload, volume ${imageName} on hypervisor ${c.display} is ${vol ? `${vol.physical} bytes` : 'missing'}, expected ${plan.size} bytes`);
          }
          if (ctx.identity) {
            // Its identity, in the metadata volume beside it (metadata.ts); removed with it on failure.
            const meta = metadataVolume(imageName);
            steps.onCleanup(`metadata volume ${meta} on ${c.display}`, async (cleanup) => ((await c.delete(meta, cleanup)) ? `removed ${meta} from ${c.display}` : false));
            await writeMetadata(c, { ...ctx.identity, volume: imageName, createdAt: new Date().toISOString() }, stop);
          }
          ctx.log(`${imageName} uploaded to ${c.display} in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${vol.path}`);
          return published(c, imageName, vol, false);
        },
        signal,
      );
      return [...results, ...uploaded];
    } catch (err) {
      return await steps.fail(err);
    } finally {
      if (temp) await rm(temp, { force: true });
      await Promise.all(clients.map((c) => c.close()));
    }
  }

  async function remove(image: PublishedImage, signal: AbortSignal): Promise<void> {
    const hv = target.hypervisors.find((h) => uriLocation(h.uri) === image.location);
    if (!hv) throw new FarmError('UPLOAD', `libvirt target ${name} has no hypervisor at ${image.location}`);
    const client = await HypervisorClient.open(hv, pool, opts, signal);
    try {
      await client.delete(image.imageName, signal, image.imageId);
    } finally {
      await client.close();
    }
  }

  /** Volumes a killed upload left: a complete one (the recorded size) stays, any other goes. */
  async function removeHalfMade(objects: readonly HalfMade[], signal: AbortSignal): Promise<HalfMadeResult[]> {
    const results: HalfMadeResult[] = [];
    for (const o of objects) {
      const hv = target.hypervisors.find((h) => uriLocation(h.uri) === o.location);
      if (o.kind !== LIBVIRT_VOLUME || !hv) {
        results.push({ object: o, error: o.kind !== LIBVIRT_VOLUME ? `not an object the libvirt uploader makes (${o.kind})` : `no hypervisor at ${o.location} in target ${name}` });
        continue;
      }
      let client: HypervisorClient | undefined;
      try {
        client = await HypervisorClient.open(hv, o.detail?.pool ?? pool, opts, signal);
        const vol = await client.lookup(o.name, signal);
        if (!vol) results.push({ object: o, outcome: 'gone' });
        else if (String(vol.physical) === o.detail?.bytes) results.push({ object: o, outcome: 'complete' });
        else results.push({ object: o, outcome: (await client.delete(o.name, signal, vol.path)) ? 'removed' : 'gone' });
      } catch (err) {
        results.push({ object: o, error: errorMessage(err) });
      } finally {
        await client?.close();
      }
    }
    return results;
  }

  return {
    name,
    kind: 'libvirt',
    removeHalfMade,
    preflight,
    find,
    upload,
    delete: remove,
    ...libvirtLifecycle({ target, name, opts }),
  };
}
