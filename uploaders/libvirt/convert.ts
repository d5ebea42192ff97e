// qcow2 → sparse raw with qemu-img, before upload: guests boot from a raw volume in ~30 s instead of
// 10+ minutes (REFERENCE), and qemu-img writes zero runs as holes (its default -S 4k), so the raw
// file costs no more disk than the data and `vol-upload --sparse` sends only the data.

import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FarmError, errorMessage } from '../../src/core/errors.ts';
import { ProcessError, run } from '../../src/core/process.ts';

export interface ImageInfo {
  format: string;
  virtualSize: number;
}

/** `qemu-img info` of a local image (format and virtual size). */
export async function imageInfo(path: string, opts: { qemuImg?: string; signal?: AbortSignal } = {}): Promise<ImageInfo> {
  const bin = opts.qemuImg ?? 'qemu-img';
  let stdout: string;
  try {
    ({ stdout } = await run([bin, 'info', '--output=json', path], { timeoutMs: 60_000, code: 'UPLOAD', ...(opts.signal ? { signal: opts.signal } : {}) }));
  } catch (err) {
    if (!(err instanceof ProcessError)) throw err;
    const why = /is not installed/.test(err.message) ? `${bin} is not installed (package qemu-utils)` : err.stderr.trim() || err.message;
    throw new FarmError('UPLOAD', `cannot read image ${path}: ${why}`);
  }
  try {
    const j = JSON.parse(stdout) as { format?: string; 'virtual-size'?: number };
    if (typeof j['virtual-size'] !== 'number' || typeof j.format !== 'string') throw new Error('no format or virtual-size');
    return { format: j.format, virtualSize: j['virtual-size'] };
  } catch (e) {
    throw new FarmError('UPLOAD', `cannot read image ${path}: unexpected qemu-img output (${errorMessage(e)})`);
  }
}

/** Temp file beside the artifact (same filesystem, so no extra copy through /tmp). */
export function rawTempPath(qcow2: string): string {
  return join(dirname(qcow2), `.${basename(qcow2)}.${randomBytes(4).toString('hex')}.farm-raw.tmp`);
}

/**
 * Converts a qcow2 to a sparse raw file at `out`. On failure or abort the partial output is
 * removed. `onFraction` gets qemu-img's progress (0..1).
 */
export async function convertToRaw(
  src: string,
  out: string,
  opts: { qemuImg?: string; signal: AbortSignal; onFraction?: (f: number) => void },
): Promise<void> {
  const bin = opts.qemuImg ?? 'qemu-img';
  if (opts.signal.aborted) throw new FarmError('ABORTED', 'cancelled');
  try {
    await run([bin, 'convert', '-p', '-f', 'qcow2', '-O', 'raw', src, out], {
      signal: opts.signal,
      code: 'UPLOAD',
      // -p prints "    (12.34/100%)" updates separated by carriage returns.
      onStdout: (d) => {
        const last = [...d.toString().matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)].at(-1);
        if (last) opts.onFraction?.(Math.min(1, Number(last[1]) / 100));
      },
    }).catch((err: unknown) => {
      if (!(err instanceof ProcessError)) throw err; // ABORTED
      if (/is not installed/.test(err.message)) throw new FarmError('UPLOAD', `${bin} is not installed (package qemu-utils)`);
      if (!err.result) throw err;
      const r = err.result;
      throw new FarmError('UPLOAD', `qemu-img convert of ${src} to raw failed (${r.code ?? r.signal}): ${r.stderr.trim() || 'no message'}`);
    });
  } catch (err) {
    await rm(out, { force: true });
    throw err;
  }
}
