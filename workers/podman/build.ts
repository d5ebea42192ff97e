// `podman build` on the worker through the API: the context is streamed as a tar (never staged on
// disk, never held in memory), the image gets a unique tag and farm labels, and the build log
// streams live.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import type Docker from 'dockerode';
import { FarmError, errorMessage, isAbortError } from '../../src/core/errors.ts';
import { ContextDigest, walkContext, type ContextSource, type ContextSummary } from './context.ts';
import { followJsonStream } from './json-stream.ts';

export type BuildContext = ContextSource & { containerfile: string };

export interface RemoteBuildOptions {
  source: BuildContext;
  tag: string;
  labels: Record<string, string>;
  buildArgs: Record<string, string>;
  signal: AbortSignal;
  onLine: (line: string) => void;
}

export interface RemoteBuild {
  imageId: string;
  /** What the context tar carried. */
  context: ContextSummary;
}

/** Name the Containerfile gets in the context tar when it lives outside the context dir. */
const INJECTED_CONTAINERFILE = '.farm.Containerfile';

export interface ContextTar {
  tar: Readable;
  /** The Containerfile's path in the tar. */
  dockerfile: string;
  /** Resolves once the whole context is in the tar. If the walk fails it rejects, and the tar is
   *  destroyed without an error of its own: its reader learns why from this promise. */
  sent: Promise<ContextSummary>;
}

/** What a failed API stream means: Node reports a response cut short as just "aborted". */
export function streamFailure(err: unknown): string {
  const e = err as { message?: string; code?: string };
  if (e.message === 'aborted' || e.code === 'ECONNRESET' || e.message === 'socket hang up') {
    return `the stream from podman on the worker was cut before the build ended (${e.message})`;
  }
  return e.message ?? String(err);
}

type Sink = NodeJS.WritableStream & { write(chunk: Buffer): boolean };

/** Resolves when a tar entry can take more data; rejects if the tar was closed meanwhile. */
function drained(sink: Sink): Promise<void> {
  return new Promise((resolve, reject) => {
    const off = () => {
      sink.off('drain', onDrain);
      sink.off('close', onClose);
    };
    const onDrain = () => (off(), resolve());
    const onClose = () => (off(), reject(new Error('the context tar was closed')));
    sink.on('drain', onDrain);
    sink.on('close', onClose);
  });
}

/** Adds one entry; a file's content is streamed from disk through `hash`. */
async function addEntry(pack: tarStream.Pack, header: Partial<tarStream.Header> & { name: string }, file?: { path: string; hash: Hash; signal: AbortSignal }): Promise<void> {
  let sink!: Sink;
  const done = new Promise<void>((resolve, reject) => {
    sink = pack.entry(header, (err) => (err ? reject(err) : resolve())) as unknown as Sink;
  });
  done.catch(() => undefined); // awaited below; a failure while the content streams is thrown there
  if (file) {
    for await (const chunk of createReadStream(file.path, { signal: file.signal }) as AsyncIterable<Buffer>) {
      file.hash.update(chunk);
      if (!sink.write(chunk)) await drained(sink);
    }
    sink.end();
  }
  await done;
}

/**
 * Streams the context as a tar, digesting what it sends on the way (the same digest as the build
 * key's); a Containerfile outside the context is added under its own name.
 */
export async function contextTar(source: BuildContext, signal: AbortSignal): Promise<ContextTar> {
  const walk = await walkContext(source, signal);
  const containerfile = await realpath(source.containerfile).catch(() => source.containerfile);
  const rel = posix.relative(walk.root, containerfile);
  const inside = rel !== '' && !rel.startsWith('../') && !posix.isAbsolute(rel);
  const pack = tarStream.pack();

  let at = '';
  const sent = (async () => {
    const digest = new ContextDigest();
    let containerfileSent = false;
    for await (const e of walk.entries) {
      at = e.rel;
      const header = { name: e.rel, mode: e.mode, mtime: e.mtime };
      if (e.kind === 'dir') {
        await addEntry(pack, { ...header, type: 'directory' });
        digest.add(e);
      } else if (e.kind === 'symlink') {
        await addEntry(pack, { ...header, type: 'symlink', linkname: e.target });
        digest.add(e);
      } else {
        const hash = createHash('sha256');
        await addEntry(pack, { ...header, type: 'file', size: e.size }, { path: e.abs, hash, signal });
        digest.add(e, `sha256:${hash.digest('hex')}`);
        if (e.rel === rel) containerfileSent = true;
      }
    }
    if (!inside) {
      const content = await readFile(source.containerfile);
      await new Promise<void>((resolve, reject) => {
        pack.entry({ name: INJECTED_CONTAINERFILE, mode: 0o644 }, content, (err) => (err ? reject(err) : resolve()));
      });
    } else if (!containerfileSent) {
      throw new FarmError('INVENTORY', `the Containerfile ${source.containerfile} is inside the build context but in a part never sent (.git, .lab or the builds directory)`, {
        hint: 'move the Containerfile, or point source.containerfile at a copy elsewhere',
      });
    }
    pack.finalize();
    return digest.summary(walk.ignoreFile);
  })().catch((err: unknown) => {
    if (err instanceof FarmError) throw err;
    if (signal.aborted) throw new FarmError('ABORTED', 'cancelled', { cause: err });
    throw new FarmError('BUILD', `sending the build context failed at ${at || walk.root}: ${errorMessage(err)}`, {
      cause: err,
      hint: 'a file that changes while a build starts (a log, a build output) belongs in .containerignore',
    });
  });
  sent.catch(() => pack.destroy());
  return { tar: pack as unknown as Readable, dockerfile: inside ? rel : INJECTED_CONTAINERFILE, sent };
}

/** Builds the image on the worker; resolves to the image id and what the context tar carried. */
export async function remoteBuild(docker: Docker, opts: RemoteBuildOptions): Promise<RemoteBuild> {
  const { tar, dockerfile, sent } = await contextTar(opts.source, opts.signal);
  // A walk that fails mid-way (a symlink out of the context) ends the request it was feeding.
  const walkFailed = new AbortController();
  let walkError: unknown;
  sent.catch((err: unknown) => {
    walkError = err;
    walkFailed.abort();
  });
  let imageId: string | undefined;
  let context: ContextSummary;
  try {
    const stream = await docker.buildImage(tar as unknown as NodeJS.ReadableStream, {
      t: opts.tag,
      dockerfile,
      labels: opts.labels,
      buildargs: opts.buildArgs,
      rm: true,
      forcerm: true,
      abortSignal: AbortSignal.any([opts.signal, walkFailed.signal]),
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
    context = await sent;
  } catch (err) {
    // A walk that failed first explains the failed request better than the request does; the
    // walk's failure once the tar is destroyed here is only a consequence.
    const walkFirst = walkError;
    tar.destroy();
    if (walkFirst instanceof FarmError && walkFirst.code !== 'ABORTED') throw walkFirst;
    if (opts.signal.aborted || isAbortError(err)) throw new FarmError('ABORTED', 'build cancelled', { cause: err });
    if (err instanceof FarmError) throw err;
    throw new FarmError('BUILD', `podman build failed: ${streamFailure(err)}`, { cause: err });
  }
  // Podman's compat build reports the id in aux; fall back to inspecting the tag.
  if (!imageId) {
    const info = await docker.getImage(opts.tag).inspect();
    imageId = info.Id;
  }
  return { imageId, context };
}
