// Request bodies, read only after what can be checked without them was checked, and then within
// a size, a time and (for bodies nobody has authenticated yet) a count.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from './reply.ts';

export interface BodyLimits {
  /** Bytes; a larger declared or received body is refused with 413. */
  limit: number;
  /** The whole body must arrive within this, or 408. */
  timeoutMs: number;
  /** Sees each chunk as it arrives (GitHub's HMAC is computed while reading). */
  onChunk?: (chunk: Buffer) => void;
}

export function readBody(req: IncomingMessage, res: ServerResponse, opts: BodyLimits): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > opts.limit) return Promise.reject(new HttpError(413, `body larger than ${opts.limit} bytes`));
  // A client that asked first (curl does for large bodies) sends nothing until told to go on.
  if (/^100-continue$/i.test(req.headers.expect ?? '')) res.writeContinue();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => fail(new HttpError(408, `the body did not arrive within ${opts.timeoutMs / 1000} s`)), opts.timeoutMs);
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const fail = (err: Error) => {
      done();
      req.pause(); // take no more of it into memory; the refusal closes the connection
      reject(err);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > opts.limit) return fail(new HttpError(413, `body larger than ${opts.limit} bytes`));
      opts.onChunk?.(c);
      chunks.push(c);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => fail(err);
    const onClose = () => {
      if (!req.complete) fail(new HttpError(400, 'the client closed the connection before sending the whole body'));
    };
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/** A fixed number of slots; take() answers at once, with a release function or nothing. */
export class Slots {
  private used = 0;

  constructor(readonly size: number) {}

  take(): (() => void) | undefined {
    if (this.used >= this.size) return undefined;
    this.used++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used--;
    };
  }
}
