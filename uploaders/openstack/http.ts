// HTTP for the OpenStack uploader: Node's fetch (undici) for the JSON calls and node:http for a
// streamed body (stream.ts), with retries and backoff (core retry) on 5xx, 429 and network
// failures, a timeout per request, and errors that name the operation and never carry a secret.

import { FarmError, errorMessage } from '../../src/core/errors.ts';
import { retry } from '../../src/core/retry.ts';
import type { Redactor } from './redact.ts';
import { sendStream, type StreamBody } from './stream.ts';

export interface RetrySettings {
  /** Attempts after the first. */
  retries: number;
  minTimeoutMs: number;
  maxTimeoutMs: number;
  /** Per-request timeout for requests without a streamed body. */
  requestTimeoutMs: number;
}

// A few retries over ~15 s ride out a service restart or a load balancer's 503 without hiding a
// real outage for long.
export const DEFAULT_RETRY: RetrySettings = { retries: 4, minTimeoutMs: 1000, maxTimeoutMs: 8000, requestTimeoutMs: 60_000 };

/**
 * Which failures are retried: `all` for reads, deletes and token requests; `throttled` (429/503
 * only: the service did nothing) for creates, where retrying a 500 might create a duplicate.
 */
export type RetryPolicy = 'all' | 'throttled';

export interface RequestOptions {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  /** For messages: "Keystone authentication", "create image", ... */
  what: string;
  headers?: Record<string, string>;
  json?: unknown;
  /** A fresh body per attempt (a stream cannot be replayed); sent with node:http, see stream.ts. */
  body?: () => StreamBody;
  /** Statuses that count as success (default: any 2xx). */
  expect?: readonly number[];
  retry: RetryPolicy;
  signal: AbortSignal;
  /** No per-request timeout (streamed uploads take as long as they take). */
  noTimeout?: boolean;
}

/** A non-success status, with Keystone's or Glance's own explanation (redacted). */
export class OpenStackHttpError extends FarmError {
  constructor(
    readonly status: number,
    message: string,
    options: { hint?: string } = {},
  ) {
    super('UPLOAD', message, options);
  }
}

class RetryableStatus extends Error {
  constructor(readonly error: OpenStackHttpError) {
    super(error.message);
  }
}

export class Http {
  constructor(
    private readonly redactor: Redactor,
    private readonly settings: RetrySettings = DEFAULT_RETRY,
  ) {}

  async request(opts: RequestOptions): Promise<Response> {
    const attempt = async (): Promise<Response> => {
      const signal = opts.noTimeout ? opts.signal : AbortSignal.any([opts.signal, AbortSignal.timeout(this.settings.requestTimeoutMs)]);
      const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
      let res: Response;
      try {
        if (opts.body) {
          // Streamed bodies skip fetch (CPU per byte); the small reply becomes a Response.
          const reply = await sendStream(opts.url, opts.method, headers, opts.body(), signal);
          res = new Response(NULL_BODY.has(reply.status) ? null : reply.text, { status: reply.status });
        } else {
          let body: string | undefined;
          if (opts.json !== undefined) {
            headers['Content-Type'] ??= 'application/json'; // Glance's PATCH takes its own JSON patch type
            body = JSON.stringify(opts.json);
          }
          res = await fetch(opts.url, { method: opts.method, headers, body, signal, redirect: 'error' });
        }
      } catch (err) {
        if (opts.signal.aborted) throw new FarmError('ABORTED', aborted(opts.what));
        throw this.networkError(opts, err);
      }
      const ok = opts.expect ? opts.expect.includes(res.status) : res.ok;
      if (ok) return res;
      const error = await this.statusError(opts, res);
      throw retryable(res.status, opts.retry) ? new RetryableStatus(error) : error;
    };
    try {
      // Cancellation ends the retries with FarmError('ABORTED', "<what>: cancelled").
      return await retry(attempt, {
        what: opts.what,
        retries: this.settings.retries,
        minTimeoutMs: this.settings.minTimeoutMs,
        maxTimeoutMs: this.settings.maxTimeoutMs,
        randomize: true,
        signal: opts.signal,
        // Network failures of a create may have reached the service: only reads are retried then.
        retryable: (error) => error instanceof RetryableStatus || (opts.retry === 'all' && isNetworkFailure(error)),
      });
    } catch (err) {
      if (err instanceof RetryableStatus) throw err.error;
      throw err;
    }
  }

  async json<T>(opts: RequestOptions): Promise<T> {
    const res = await this.request(opts);
    try {
      return (await res.json()) as T;
    } catch (err) {
      throw new FarmError('UPLOAD', `${opts.what}: the response from ${origin(opts.url)} is not JSON (${errorMessage(err)})`);
    }
  }

  private networkError(opts: RequestOptions, err: unknown): Error {
    // fetch (undici) puts the reason in `cause`; node:http errors carry their code themselves.
    const own = err as { code?: string; cause?: { code?: string; message?: string } };
    const cause = own.cause ?? (own.code ? { code: own.code } : undefined);
    if (cause?.code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || cause?.code === 'LENGTH_MISMATCH') {
      return new FarmError('UPLOAD', `${opts.what}: the data sent did not match its declared length (did the file change during the upload?)`);
    }
    const why = cause?.code ?? cause?.message ?? errorMessage(err);
    const e = new FarmError('UPLOAD', this.redactor.redact(`${opts.what}: cannot reach ${origin(opts.url)} (${why})`), {
      hint: 'Check the URL (auth_url, or the endpoint in the service catalog) and that the service is up.',
    });
    (e as { network?: boolean }).network = true;
    return e;
  }

  private async statusError(opts: RequestOptions, res: Response): Promise<OpenStackHttpError> {
    let text = '';
    try {
      text = await res.text();
    } catch {
      // the explanation is optional
    }
    const detail = explain(text);
    const message = `${opts.what} failed: HTTP ${res.status}${detail ? `: ${detail}` : ''} (${opts.method} ${path(opts.url)})`;
    return new OpenStackHttpError(res.status, this.redactor.redact(message));
  }
}

/** Statuses whose Response may not have a body. */
const NULL_BODY = new Set([204, 205, 304]);

function retryable(status: number, policy: RetryPolicy): boolean {
  if (status === 429 || status === 503) return true;
  return policy === 'all' && status >= 500;
}

function isNetworkFailure(err: Error): boolean {
  return (err as { network?: boolean }).network === true;
}

function aborted(what: string): string {
  return `${what}: cancelled`;
}

function origin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'the service';
  }
}

/** The path without the query (queries can hold names, never secrets, but keep messages short). */
function path(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return url;
  }
}

/** Keystone's {"error": {"message"}}, Glance's HTML or plain text, shortened to one line. */
export function explain(body: string): string {
  const trimmed = body.trim();
  if (!trimmed) return '';
  try {
    const doc = JSON.parse(trimmed) as { error?: { message?: string; title?: string }; message?: string };
    const msg = doc.error?.message ?? doc.error?.title ?? doc.message;
    if (msg) return oneLine(msg);
  } catch {
    // not JSON
  }
  return oneLine(trimmed.replace(/<title>[^<]*<\/title>/gi, ' ').replace(/<[^>]+>/g, ' '));
}

function oneLine(s: string): string {
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}
