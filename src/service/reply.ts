// How the service answers. An answer sent before the request's body was read (a refusal, an
// ignored event) closes the connection: the unread body is never pulled off the wire to keep the
// connection alive, so a refused sender cannot make the service read what it sends. The close
// lingers, boundedly: closing a socket with unread data makes the kernel send a reset, which can
// destroy the answer before a client that is still sending has read it (it sees EPIPE instead of
// the 401). So the write side closes first, and what arrives is discarded for at most
// LINGER_MS or LINGER_BYTES, then the socket goes.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { SubmitResult } from './queue.ts';
import { redact, redactJson } from '../core/redact.ts';
import { runView } from './views.ts';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Whether the request carries a body (chunked, or a non-zero Content-Length). */
export function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

export const LINGER_MS = 2000;
export const LINGER_BYTES = 256 * 1024;

/**
 * Makes Node's close of this socket (http's destroySoon once a `connection: close` answer is
 * written) a bounded lingering close. The override is per socket; nothing else changes.
 */
function lingerOnClose(socket: Socket): void {
  socket.destroySoon = function lingeringClose(this: Socket): void {
    let seen = 0;
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
    this.on('data', (d: Buffer) => {
      seen += d.length;
      if (seen > LINGER_BYTES) this.destroy();
    });
    this.once('end', () => this.destroy());
    this.end();
    this.resume();
  };
}

export function send(res: ServerResponse, status: number, body: string, type: string, headers: Record<string, string> = {}): void {
  const unread = hasBody(res.req) && !res.req.complete;
  if (unread && res.socket) lingerOnClose(res.socket);
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...(unread ? { connection: 'close' } : {}),
    ...headers,
  });
  res.end(redact(body));
}

export function json(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, JSON.stringify(redactJson(value), null, 2) + '\n', 'application/json; charset=utf-8', headers);
}

/** 202 with the run a trigger queued or joined; 503 once the service is stopping. */
export function queued(res: ServerResponse, result: SubmitResult | undefined): void {
  if (!result) return json(res, 503, { error: 'the service is stopping; try again once it is back' });
  const view = runView(result.run);
  json(res, 202, { outcome: result.outcome, status: view.status_text, run: view, url: `/api/builds/${view.id}` }, { location: `/api/builds/${view.id}` });
}
