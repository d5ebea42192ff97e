// Runs one container to completion through the API with live output; cancellation kills and
// removes it, so Ctrl-C leaves nothing running on the worker.

import type { Readable } from 'node:stream';
import { PassThrough } from 'node:stream';
import { createInterface } from 'node:readline';
import type Docker from 'dockerode';
import { FarmError } from '../../src/core/errors.ts';

export interface RunOptions {
  name: string;
  image: string;
  cmd: string[];
  labels: Record<string, string>;
  privileged: boolean;
  securityOpt: string[];
  binds: string[];
  /** A tar placed at / before start (e.g. bib's /config.toml). */
  files?: Readable | undefined;
  signal: AbortSignal;
  onLine: (line: string) => void;
}

function pipeLines(stream: PassThrough, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    rl.on('line', (l) => {
      // bib redraws progress with carriage returns; keep the last state of each line.
      const text = l.split('\r').pop() ?? '';
      if (text.trim()) onLine(text);
    });
    rl.on('close', resolve);
  });
}

/** Resolves to the container's exit code; the container is removed either way. */
export async function runContainer(docker: Docker, opts: RunOptions): Promise<number> {
  // A leftover container of the same name (an earlier crashed run of this build) is replaced.
  await docker.getContainer(opts.name).remove({ force: true }).catch(() => undefined);
  const container = await docker.createContainer({
    name: opts.name,
    Image: opts.image,
    Cmd: opts.cmd,
    Labels: opts.labels,
    Tty: false,
    HostConfig: {
      Privileged: opts.privileged,
      SecurityOpt: opts.securityOpt,
      Binds: opts.binds,
    },
  });
  const kill = () => {
    container.kill().catch(() => undefined);
  };
  try {
    if (opts.files) await container.putArchive(opts.files as unknown as NodeJS.ReadableStream, { path: '/' });
    if (opts.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    opts.signal.addEventListener('abort', kill, { once: true });
    await container.start();
    const logs = (await container.logs({ follow: true, stdout: true, stderr: true })) as unknown as Readable;
    const out = new PassThrough();
    const err = new PassThrough();
    docker.modem.demuxStream(logs, out, err);
    logs.on('end', () => {
      out.end();
      err.end();
    });
    logs.on('error', () => {
      out.end();
      err.end();
    });
    const lines = Promise.all([pipeLines(out, opts.onLine), pipeLines(err, opts.onLine)]);
    const result = (await container.wait()) as { StatusCode: number };
    // Give the log stream a moment to drain after exit, without hanging on a stuck stream.
    await Promise.race([lines, new Promise((r) => setTimeout(r, 2000))]);
    logs.destroy();
    if (opts.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
    return result.StatusCode;
  } finally {
    opts.signal.removeEventListener('abort', kill);
    await container.remove({ force: true }).catch(() => undefined);
  }
}
