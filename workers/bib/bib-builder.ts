// The real builder: `podman build` of the shared Containerfile on the worker, then
// bootc-image-builder in a privileged container with the host's storage mounted, one run per group
// of --type values that do not overwrite each other's outputs, each in its own output dir.

import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import type Docker from 'dockerode';
import type { ImageType } from '../../src/core/image-types.ts';
import { FarmError, isAbortError, throwIfAborted } from '../../src/core/errors.ts';
import { TYPE_OUTPUT_PATH } from './layout.ts';
import { cacheMounts, ensureCache, trimCache } from './cache.ts';
import type { Builder, BuildRequest, PreparedWorker, RunOutputs } from '../builder.ts';
import type { WorkerTransport } from '../transport.ts';
import { farmLabels, ownImagesFilter, podmanClient } from '../podman/client.ts';
import { remoteBuild } from '../podman/build.ts';
import { ensureBuilderImage, pullImage } from '../podman/pull.ts';
import { pushImage } from '../podman/push.ts';
import { runContainer } from '../podman/run.ts';

/** bib's command line for one run (REFERENCE: --type repeated, --rootfs, --progress, image ref). */
export function bibArgs(types: readonly ImageType[], rootfs: string, extraArgs: readonly string[], imageRef: string): string[] {
  const args: string[] = [];
  for (const t of types) args.push('--type', t);
  // verbose progress prints plain lines, which is what a log stream without a terminal needs.
  args.push('--rootfs', rootfs, '--progress', 'verbose', ...extraArgs, imageRef);
  return args;
}

/**
 * The unique tag of this build's image on a worker. The worker's name is in it: two worker entries
 * may share one host's storage (a big host listed twice), and one's cleanup must not remove the
 * image the other is converting.
 */
export function buildImageRef(buildId: string, arch: string, worker: string): string {
  const tag = `${buildId}-${arch}-${worker}`;
  // A tag has at most 128 characters; a longer worker name is replaced by its digest.
  return `localhost/farm-build:${tag.length <= 128 ? tag : `${buildId}-${arch}-${createHash('sha256').update(worker).digest('hex').slice(0, 16)}`}`;
}

/** Remote output root for one build and arch, always below the worker's output_dir. */
export function remoteOutputRoot(outputDir: string, buildId: string, arch: string): string {
  const root = posix.join(outputDir, buildId, arch);
  if (!root.startsWith(posix.normalize(outputDir) + '/')) throw new Error(`bad output root ${root}`);
  return root;
}

async function configTar(path: string): Promise<Readable> {
  const pack = tarStream.pack();
  pack.entry({ name: 'config.toml', mode: 0o600 }, await readFile(path));
  pack.finalize();
  return pack as unknown as Readable;
}

const cancelled = (err: unknown, signal: AbortSignal) =>
  signal.aborted || isAbortError(err) ? new FarmError('ABORTED', 'build cancelled', { cause: err }) : err;

/**
 * A stream that a dead link cut reads "aborted" or "socket hang up": the error says instead that
 * the connection was lost, and during which stage. Undefined when the connection is fine.
 */
function lostConnection(err: unknown, transport: WorkerTransport, signal: AbortSignal, stage: string): FarmError | undefined {
  const lost = signal.aborted ? undefined : transport.connectionLost?.();
  if (!lost) return undefined;
  return new FarmError('SSH', `${lost.message} (during ${stage})`, { cause: err, ...(lost instanceof FarmError && lost.hint ? { hint: lost.hint } : {}) });
}

export class BibBuilder implements Builder {
  async prepare(transport: WorkerTransport, req: BuildRequest): Promise<PreparedWorker> {
    const worker = transport.worker;
    const docker = podmanClient(transport);
    const labels = farmLabels(req.buildId, req.arch, worker.name);
    const imageRef = buildImageRef(req.buildId, req.arch, worker.name);
    const outRoot = remoteOutputRoot(worker.output_dir, req.buildId, req.arch);
    // Only this worker's own run dirs are removed: another worker entry may share the output dir.
    const runDirs: string[] = [];
    let built = false;
    /** An image source's pulled image, when this build pulled it (cleanup removes it then). */
    let pulled: string | undefined;

    const cleanup = async (): Promise<void> => {
      // Best effort, each step independent: a failed removal must not hide the others.
      const errors: string[] = [];
      if (pulled) {
        await docker.getImage(pulled).remove({ force: true }).catch((e: Error) => {
          if (!/no such image|image not known|404/i.test(e.message)) errors.push(`image ${pulled}: ${e.message}`);
        });
      }
      if (built) {
        // A pulled image that was on the worker before loses only the build's tag (no force).
        await docker.getImage(imageRef).remove({ force: !req.pull }).catch((e: Error) => {
          if (!/no such image|image not known|404/i.test(e.message)) errors.push(`image ${imageRef}: ${e.message}`);
        });
      }
      // Each step of a layered build leaves a cached image with the build's labels; a build cut
      // short leaves them without the tagged one. Only this worker entry's own go (labels name it).
      const cached = await docker.listImages({ all: true, filters: JSON.stringify(ownImagesFilter(labels)) } as Docker.ListImagesOptions).catch((e: Error) => {
        errors.push(`listing cached images: ${e.message}`);
        return [];
      });
      for (const img of cached) {
        await docker.getImage(img.Id).remove({ force: true }).catch((e: Error) => {
          if (!/no such image|image not known|404/i.test(e.message)) errors.push(`image ${img.Id.slice(0, 19)}: ${e.message}`);
        });
      }
      for (const dir of runDirs) await transport.exec(['rm', '-rf', '--', dir]).catch((e: Error) => errors.push(`${dir}: ${e.message}`));
      if (worker.cache && runDirs.length > 0) {
        await trimCache(transport, worker.cache).then(req.onLine, (e: Error) => errors.push(`cache ${worker.cache!.dir}: ${e.message}`));
      }
      // The arch's and the build's directories go too once empty (other arches may share them).
      await transport.exec(['rmdir', '--ignore-fail-on-non-empty', '--', outRoot, posix.dirname(outRoot)], { check: false });
      if (errors.length) throw new FarmError('BUILD', `cleanup on ${worker.name} incomplete: ${errors.join('; ')}`);
    };

    const run = async (index: number, types: ImageType[]): Promise<RunOutputs> => {
      const outDir = posix.join(outRoot, `run${index + 1}`);
      runDirs.push(outDir);
      try {
        await transport.exec(['mkdir', '-p', '--', outDir], { signal: req.signal });
        const cache = worker.cache ? cacheMounts(worker.cache) : undefined;
        if (worker.cache) await ensureCache(transport, worker.cache, req.signal);
        req.onLine(`bootc-image-builder --type ${types.join(' --type ')} (${req.builder.image})`);
        const code = await runContainer(docker, {
          name: `farm-bib-${req.buildId}-${req.arch}-${index + 1}`,
          image: req.builder.image,
          cmd: bibArgs(types, req.builder.rootfs, [...(cache?.args ?? []), ...req.builder.extra_args], imageRef),
          labels,
          privileged: true,
          securityOpt: ['label=type:unconfined_t'],
          binds: [`${worker.storage}:/var/lib/containers/storage`, `${outDir}:/output`, ...(cache?.binds ?? [])],
          files: req.builder.configPath ? await configTar(req.builder.configPath) : undefined,
          signal: req.signal,
          onLine: req.onLine,
        });
        if (code !== 0) {
          throw new FarmError('BUILD', `bootc-image-builder exited with code ${code} on ${worker.name}`, {
            hint: 'the lines above are its output; "no space left on device" means the worker needs more room in container storage or the output dir',
          });
        }
        const disks = types.map((type) => ({ type, path: posix.join(outDir, TYPE_OUTPUT_PATH[type]), name: `${type}/${posix.basename(TYPE_OUTPUT_PATH[type])}` }));
        const listed = await transport.exec(['find', outDir, '-maxdepth', '1', '-type', 'f', '-name', 'manifest-*.json'], { signal: req.signal });
        const extras = listed.stdout
          .split('\n')
          .filter(Boolean)
          .map((path) => ({ path, name: `run${index + 1}/${posix.basename(path)}`, types }));
        // Every promised disk must exist before anything is fetched.
        const missing: string[] = [];
        for (const d of disks) {
          const r = await transport.exec(['test', '-f', d.path], { check: false, signal: req.signal });
          if (r.code !== 0) missing.push(d.path);
        }
        if (missing.length) throw new FarmError('BUILD', `bootc-image-builder did not write ${missing.join(', ')} on ${worker.name}`);
        return { disks, extras };
      } catch (err) {
        throw lostConnection(err, transport, req.signal, `bootc-image-builder run ${index + 1}`) ?? cancelled(err, req.signal);
      }
    };

    const build = () => {
      req.onLine(`podman build ${imageRef} on ${worker.name}`);
      return remoteBuild(docker, { source: req.source, tag: imageRef, labels, buildArgs: req.source.buildArgs, signal: req.signal, onLine: req.onLine });
    };

    let stage = req.pull ? `pulling ${req.pull.ref}` : 'podman build';
    try {
      const { imageId, context } = req.pull ? await pullAndTag(docker, req.pull, imageRef, req, (ref) => (pulled = ref), () => (built = true)) : await build();
      built = true;
      throwIfAborted(req.signal);
      stage = `checking the builder image ${req.builder.image}`;
      await ensureBuilderImage(docker, req.builder.image, req.builder.pull, req.signal, req.onLine);
      const push: PreparedWorker['push'] = (destination, o) => pushImage(docker, imageRef, destination, { ...o, onLine: req.onLine });
      return { imageRef, imageId, context, run, cleanup, push };
    } catch (err) {
      const lost = lostConnection(err, transport, req.signal, stage);
      if (lost) {
        req.onLine(`warning: cannot clean up on ${worker.name} without a connection: ${imageRef} and ${outRoot} may stay there`);
        throw lost;
      }
      // Leave nothing behind on failure or cancellation; report the original error.
      await cleanup().catch((e: Error) => req.onLine(`warning: ${e.message}`));
      throw cancelled(err, req.signal);
    }
  }
}

/**
 * An image source on this worker: REF by its arch's digest, pulled unless present, then tagged
 * with the build's own tag so bib converts it as it converts a built image. `onPulled` is told the
 * ref when this pull brought it (cleanup removes it then); `onTagged` once the tag exists.
 */
async function pullAndTag(
  docker: Docker,
  pull: NonNullable<BuildRequest['pull']>,
  imageRef: string,
  req: BuildRequest,
  onPulled: (ref: string) => void,
  onTagged: () => void,
): Promise<{ imageId: string; context?: undefined }> {
  if (await pullImage(docker, pull.ref, { auth: pull.auth, tlsVerify: pull.tlsVerify, signal: req.signal, onLine: req.onLine })) onPulled(pull.ref);
  const info = await docker.getImage(pull.ref).inspect();
  const colon = imageRef.lastIndexOf(':');
  await docker.getImage(info.Id).tag({ repo: imageRef.slice(0, colon), tag: imageRef.slice(colon + 1) });
  onTagged();
  req.onLine(`${pull.ref} (${info.Architecture}) tagged ${imageRef}`);
  return { imageId: info.Id };
}
