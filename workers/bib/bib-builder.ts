// The real builder: `podman build` of the shared Containerfile on the worker, then
// bootc-image-builder in a privileged container with the host's storage mounted, one run per group
// of --type values that do not overwrite each other's outputs.

import { posix } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import type Docker from 'dockerode';
import type { ImageType } from '../../src/inventory/schema.ts';
import { FarmError, isAbortError, throwIfAborted } from '../../src/errors.ts';
import { TYPE_OUTPUT_PATH } from '../artifact.ts';
import type { Builder, BuildRequest, BuildResult, RemoteOutput } from '../builder.ts';
import type { WorkerTransport } from '../transport.ts';
import { farmLabels, podmanClient } from '../podman/client.ts';
import { remoteBuild } from '../podman/build.ts';
import { ensureBuilderImage } from '../podman/pull.ts';
import { runContainer } from '../podman/run.ts';

/** bib's command line for one run (REFERENCE: --type repeated, --rootfs, --progress, image ref). */
export function bibArgs(types: readonly ImageType[], rootfs: string, extraArgs: readonly string[], imageRef: string): string[] {
  const args: string[] = [];
  for (const t of types) args.push('--type', t);
  // verbose progress prints plain lines, which is what a log stream without a terminal needs.
  args.push('--rootfs', rootfs, '--progress', 'verbose', ...extraArgs, imageRef);
  return args;
}

/** The unique tag of this build's image on the worker. */
export function buildImageRef(buildId: string, arch: string): string {
  return `localhost/farm-build:${buildId}-${arch}`;
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

export class BibBuilder implements Builder {
  async build(transport: WorkerTransport, req: BuildRequest): Promise<BuildResult> {
    const worker = transport.worker;
    const docker = podmanClient(transport);
    const labels = farmLabels(req.buildId, req.arch);
    const imageRef = buildImageRef(req.buildId, req.arch);
    const outRoot = remoteOutputRoot(worker.output_dir, req.buildId, req.arch);
    let built = false;

    const cleanup = async (): Promise<void> => {
      // Best effort, each step independent: a failed removal must not hide the others.
      const errors: string[] = [];
      if (built) {
        await docker.getImage(imageRef).remove({ force: true }).catch((e: Error) => {
          if (!/no such image|image not known|404/i.test(e.message)) errors.push(`image ${imageRef}: ${e.message}`);
        });
      }
      await transport.exec(['rm', '-rf', '--', outRoot]).catch((e: Error) => errors.push(`${outRoot}: ${e.message}`));
      // The build's directory goes too once its last arch is cleaned (other arches may share it).
      await transport.exec(['rmdir', '--ignore-fail-on-non-empty', '--', posix.dirname(outRoot)], { check: false });
      if (errors.length) throw new FarmError('BUILD', `cleanup on ${worker.name} incomplete: ${errors.join('; ')}`);
    };

    try {
      req.onLine(`podman build ${imageRef} on ${worker.name}`);
      const imageId = await remoteBuild(docker, {
        contextDir: req.source.contextDir,
        containerfile: req.source.containerfile,
        tag: imageRef,
        labels,
        buildArgs: req.source.buildArgs,
        signal: req.signal,
        onLine: req.onLine,
      });
      built = true;
      throwIfAborted(req.signal);

      await ensureBuilderImage(docker, req.builder.image, req.builder.pull, req.signal, req.onLine);

      const disks: RemoteOutput[] = [];
      const extras: BuildResult['extras'] = [];
      for (const [i, types] of req.runs.entries()) {
        const outDir = posix.join(outRoot, `run${i + 1}`);
        await transport.exec(['mkdir', '-p', '--', outDir], { signal: req.signal });
        req.onLine(`bootc-image-builder --type ${types.join(' --type ')} (${req.builder.image})`);
        const code = await runContainer(docker, {
          name: `farm-bib-${req.buildId}-${req.arch}-${i + 1}`,
          image: req.builder.image,
          cmd: bibArgs(types, req.builder.rootfs, req.builder.extra_args, imageRef),
          labels,
          privileged: true,
          securityOpt: ['label=type:unconfined_t'],
          binds: [`${worker.storage}:/var/lib/containers/storage`, `${outDir}:/output`],
          files: req.builder.configPath ? await configTar(req.builder.configPath) : undefined,
          signal: req.signal,
          onLine: req.onLine,
        });
        if (code !== 0) {
          throw new FarmError('BUILD', `bootc-image-builder exited with code ${code} on ${worker.name}`, {
            hint: 'the lines above are its output; "no space left on device" means the worker needs more room in container storage or the output dir',
          });
        }
        for (const type of types) {
          disks.push({ type, path: posix.join(outDir, TYPE_OUTPUT_PATH[type]), name: `${type}/${posix.basename(TYPE_OUTPUT_PATH[type])}` });
        }
        const listed = await transport.exec(['find', outDir, '-maxdepth', '1', '-type', 'f', '-name', 'manifest-*.json'], { signal: req.signal });
        for (const path of listed.stdout.split('\n').filter(Boolean)) {
          extras.push({ path, name: `run${i + 1}/${posix.basename(path)}`, types });
        }
      }
      // Every promised disk must exist before anything is fetched.
      const missing: string[] = [];
      for (const d of disks) {
        const r = await transport.exec(['test', '-f', d.path], { check: false, signal: req.signal });
        if (r.code !== 0) missing.push(d.path);
      }
      if (missing.length) throw new FarmError('BUILD', `bootc-image-builder did not write ${missing.join(', ')} on ${worker.name}`);
      return { imageRef, imageId, disks, extras, cleanup };
    } catch (err) {
      // Leave nothing behind on failure or cancellation; report the original error.
      await cleanup().catch((e: Error) => req.onLine(`warning: ${e.message}`));
      if (req.signal.aborted || isAbortError(err)) throw new FarmError('ABORTED', 'build cancelled', { cause: err });
      throw err;
    }
  }
}
