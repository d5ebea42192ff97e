// How the service answers. An answer sent before the request's body was read (a refusal, an
// ignored event) closes the connection: the unread body is never pulled off the wire to keep the
// connection alive, so a refused sender cannot make the service read what it sends.

import type { IncomingMessage, ServerResponse } from 'node:http';
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

export function send(res: ServerResponse, status: number, body: string, type: string, headers: Record<string, string> = {}): void {
  const unread = hasBody(res.req) && !res.req.complete;
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
