// One streamed request (the image data PUT) over node:http/node:https rather than fetch: undici's
// fetch with a streamed body costs about twice the CPU per byte (0.9-1.06 s against 0.4-0.6 s
// per 768 MiB, notes/reports/bench.md), and on a loaded host that CPU is taken from Glance.
// TLS uses Node's default trust store and NODE_EXTRA_CA_CERTS, as fetch does for the JSON calls.

import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export type StreamBody = NodeJS.ReadableStream | AsyncIterable<Uint8Array>;

export interface StreamedReply {
  status: number;
  text: string;
}

/** The body yielded more or fewer bytes than its declared Content-Length. */
export class LengthMismatch extends Error {
  readonly code = 'LENGTH_MISMATCH';
}

/**
 * Sends `body` and resolves with the status and the (small) reply text once both the reply has
 * come and the body is done. Rejects with the network, body or abort error otherwise. A reply
 * that comes before the body is done (a refusal) wins: the rest of the body is not sent.
 */
export async function sendStream(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: StreamBody,
  signal: AbortSignal,
): Promise<StreamedReply> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  const req = send(u, { method, headers, signal });
  const replied = new Promise<IncomingMessage>((resolve, reject) => {
    req.on('response', resolve);
    // Persistent: a late socket error after the reply must not go unhandled.
    req.on('error', reject);
  });
  const declared = contentLength(headers);
  const stages = declared === undefined ? [body, req] : [body, new LengthCheck(declared), req];
  // Settles with the body's error (if any); a failed stage destroys req, which rejects `replied`.
  const piped = (pipeline as (...s: unknown[]) => Promise<void>)(...stages).then(
    () => undefined,
    (err: unknown) => err,
  );
  let res: IncomingMessage;
  try {
    res = await replied;
  } catch (err) {
    // The body's own failure (a length mismatch, a read error) explains more than req's echo of it.
    const bodyError = await piped;
    throw bodyError ?? err;
  }
  const status = res.statusCode ?? 0;
  const text = await readText(res);
  if (status < 200 || status >= 300) {
    // Glance refused before taking everything: stop sending (the answer is all that matters).
    req.destroy();
    await piped;
    return { status, text };
  }
  const bodyError = await piped;
  if (bodyError) throw bodyError;
  return { status, text };
}

function contentLength(headers: Record<string, string>): number | undefined {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === 'content-length') return Number(v);
  return undefined;
}

/** Fails the stream as soon as it passes `declared` bytes, or ends short of it. */
class LengthCheck extends Transform {
  private seen = 0;
  constructor(private readonly declared: number) {
    // Room for one 1 MiB read, so the check never throttles the file.
    super({ highWaterMark: 1024 * 1024 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.declared) cb(new LengthMismatch(`body has more than the declared ${this.declared} bytes`));
    else cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.seen !== this.declared) cb(new LengthMismatch(`body has ${this.seen} bytes, ${this.declared} declared`));
    else cb();
  }
}

/** The reply text (errors and 204s are small); a broken reply gives what came. */
async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of res) chunks.push(c as Buffer);
  } catch {
    // the explanation is optional
  }
  return Buffer.concat(chunks).toString();
}
