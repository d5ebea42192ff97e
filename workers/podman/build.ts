// `podman build` on the worker through the API: the context is streamed as a tar (never staged on
// disk), the image gets a unique tag and farm labels, and the build log streams live.

import { readFile } from 'node:fs/promises';
import { relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import tarFs from 'tar-fs';
import type Docker from 'dockerode';
import { FarmError, isAbortError } from '../../src/errors.ts';
import { followJsonStream } from './json-stream.ts';

export interface RemoteBuildOptions {
  contextDir: string;
  containerfile: string;
  tag: string;
  labels: Record<string, string>;
  buildArgs: Record<string, string>;
  signal: AbortSignal;
  onLine: (line: string) => void;
}

/** Name the Containerfile gets in the context tar when it lives outside the context dir. */
const INJECTED_CONTAINERFILE = '.farm.Containerfile';

/** Streams the context; a Containerfile outside the context is added to the tar under its own name. */
export async function contextTar(contextDir: string, containerfile: string): Promise<{ tar: Readable; dockerfile: string }> {
  const rel = relative(resolve(contextDir), resolve(containerfile));
  const inside = !rel.startsWith('..') && !rel.startsWith(sep) && rel !== '';
  if (inside) {
    return { tar: tarFs.pack(contextDir) as unknown as Readable, dockerfile: rel.split(sep).join("/") };
  }
  const content = await readFile(containerfile);
  const tar = tarFs.pack(contextDir, {
    finalize: false,
    finish(pack) {
      pack.entry({ name: INJECTED_CONTAINERFILE, mode: 0o644 }, content);
      pack.finalize();
    },
  });
  return { tar: tar as unknown as Readable, dockerfile: INJECTED_CONTAINERFILE };
}

/** Builds the image on the worker; resolves to the image id. */
export async function remoteBuild(docker: Docker, opts: RemoteBuildOptions): Promise<string> {
  const { tar, dockerfile } = await contextTar(opts.contextDir, opts.containerfile);
  let imageId: string | undefined;
  try {
    const stream = await docker.buildImage(tar as unknown as NodeJS.ReadableStream, {
      t: opts.tag,
      dockerfile,
      labels: opts.labels,
      buildargs: opts.buildArgs,
      rm: true,
      forcerm: true,
      abortSignal: opts.signal,
    } as Docker.ImageBuildOptions);
    await followJsonStream(stream as Readable, opts.signal, (msg) => {
      if (typeof msg.stream === 'string') {
        for (const line of msg.stream.split('\n')) if (line.trim()) opts.onLine(line);
      }
      const aux = msg.aux as { ID?: string } | undefined;
      if (aux?.ID) imageId = aux.ID;
      if (msg.error || msg.errorDetail) {
        const detail = (msg.errorDetail as { message?: string } | undefined)?.message ?? String(msg.error);
        throw new FarmError('BUILD', `podman build failed: ${detail.trim()}`);
      }
    });
  } catch (err) {
    if (opts.signal.aborted || isAbortError(err)) throw new FarmError('ABORTED', 'build cancelled', { cause: err });
    if (err instanceof FarmError) throw err;
    throw new FarmError('BUILD', `podman build failed: ${(err as Error).message}`, { cause: err });
  }
  // Podman's compat build reports the id in aux; fall back to inspecting the tag.
  if (!imageId) {
    const info = await docker.getImage(opts.tag).inspect();
    imageId = info.Id;
  }
  return imageId;
}
