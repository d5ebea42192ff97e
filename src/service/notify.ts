// Tells someone a build ended: a JSON POST to a webhook (retried with backoff) and/or a command
// run with the same JSON on stdin (argv, no shell). The payload lists the new images, so whoever
// receives it can pick them up or ignore them.

import { retry } from '../core/retry.ts';
import { errorMessage } from '../core/errors.ts';
import { start, stderrTail } from '../core/process.ts';
import type { ArchState } from '../records/state.ts';
import type { BuildSummary } from '../records/history.ts';
import type { RunRecord } from './store.ts';

export interface NotifyImage {
  arch: string;
  type: string;
  target: string;
  kind: string;
  location: string;
  name: string;
  id: string;
  artifact_id: string;
}

/** One published image as the service's JSON (notifications, API) shows it. */
export function imageJson(i: BuildSummary['images'][number]): NotifyImage {
  return {
    arch: i.arch,
    type: i.type,
    target: i.target,
    kind: i.kind,
    location: i.location,
    name: i.imageName,
    id: i.imageId,
    artifact_id: i.artifactId,
  };
}

export interface NotifyPayload {
  event: 'build.finished';
  run_id: string;
  build_id: string | null;
  status: string;
  message?: string;
  triggers: Array<{ kind: string; detail: string; at: string }>;
  commit?: string;
  key?: string;
  queued_at: string;
  started_at?: string;
  finished_at?: string;
  /** Seconds from start to end, and spent waiting in the queue. */
  duration_s?: number;
  queued_s?: number;
  arches: Record<string, { step: string; error?: string; build_s?: number; fetch_s?: number; uploads: Record<string, string> }>;
  /** Images this build published (already existing ones are in reused_images). */
  images: NotifyImage[];
  reused_images: NotifyImage[];
  artifacts: Array<{ arch: string; type: string; name: string; path: string; size: number; sha256: string }>;
  status_url?: string;
}

const seconds = (from?: string, to?: string) => (from && to ? Math.round((Date.parse(to) - Date.parse(from)) / 100) / 10 : undefined);

export function notifyPayload(run: RunRecord, build: BuildSummary | undefined, statusUrl?: string): NotifyPayload {
  const arches: NotifyPayload['arches'] = {};
  for (const a of Object.values(build?.arches ?? {}) as Array<ArchState | undefined>) {
    if (!a) continue;
    arches[a.arch] = {
      step: a.step,
      ...(a.error ? { error: a.error } : {}),
      ...(a.durations?.build !== undefined ? { build_s: Math.round(a.durations.build * 10) / 10 } : {}),
      ...(a.durations?.fetch !== undefined ? { fetch_s: Math.round(a.durations.fetch * 10) / 10 } : {}),
      uploads: Object.fromEntries(Object.entries(a.uploads).map(([t, u]) => [t, u.step])),
    };
  }

  const startedAt = build?.startedAt ?? run.startedAt;
  const finishedAt = build?.finishedAt ?? run.finishedAt;
  const duration = seconds(startedAt, finishedAt);
  const queued = seconds(run.queuedAt, run.startedAt);
  return {
    event: 'build.finished',
    run_id: run.id,
    build_id: build?.buildId ?? run.buildId ?? null,
    status: build?.status ?? run.status,
    ...(run.message && run.status === 'error' ? { message: run.message } : {}),
    triggers: run.reasons.map((r) => ({ kind: r.kind, detail: r.detail, at: r.at })),
    ...(run.commit ? { commit: run.commit } : {}),
    ...((build?.key ?? run.key) ? { key: build?.key ?? run.key } : {}),
    queued_at: run.queuedAt,
    ...(startedAt ? { started_at: startedAt } : {}),
    ...(finishedAt ? { finished_at: finishedAt } : {}),
    ...(duration !== undefined ? { duration_s: duration } : {}),
    ...(queued !== undefined ? { queued_s: queued } : {}),
    arches,
    images: (build?.images ?? []).filter((i) => !i.existing).map(imageJson),
    reused_images: (build?.images ?? []).filter((i) => i.existing).map(imageJson),
    artifacts: (build?.artifacts ?? []).map((a) => ({ arch: a.arch, type: a.type, name: a.imageName, path: a.path, size: a.size, sha256: a.sha256 })),
    ...(statusUrl ? { status_url: statusUrl } : {}),
  };
}

export interface WebhookOptions {
  retries?: number;
  minTimeoutMs?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** POSTs the payload; retries network errors, 5xx, 408 and 429; another 4xx is final. */
export async function postWebhook(url: string, payload: unknown, opts: WebhookOptions = {}): Promise<number> {
  const body = JSON.stringify(payload);
  // The URL may carry a secret (webhook_env): logs name only its origin.
  const where = new URL(url).origin;
  let attempts = 0;
  const describe = (error: Error) => (error.message.includes(where) ? error.message : `notify webhook ${where}: ${errorMessage(error.cause ?? error)}`);
  try {
    return await retry(
      async (attempt) => {
        attempts = attempt;
        const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs ?? 15_000)]) : AbortSignal.timeout(opts.timeoutMs ?? 15_000);
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'farm-serve' }, body, signal });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return res.status;
        throw new WebhookRefused(res.status, `notify webhook ${where} answered ${res.status}`);
      },
      {
        what: `notify webhook ${where}`,
        retries: opts.retries ?? 4,
        minTimeoutMs: opts.minTimeoutMs ?? 1000,
        ...(opts.signal ? { signal: opts.signal } : {}),
        // Another 4xx will not change by asking again.
        retryable: (err) => !(err instanceof WebhookRefused) || !(err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429),
        onRetry: (error, attempt) => opts.log?.(`${describe(error)} (attempt ${attempt}, retrying)`),
      },
    );
  } catch (err) {
    if (!opts.signal?.aborted) opts.log?.(`${describe(err as Error)} (attempt ${attempts}, giving up)`);
    throw err;
  }
}

class WebhookRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What every command needs to run at all; anything else it gets only when service.notify.env names it. */
const BASE_ENV = ['PATH', 'HOME', 'LANG'];

/**
 * The notify command's environment: PATH, HOME, LANG and the variables the inventory names. It
 * runs someone else's program, which has no use for the cloud credentials and tokens the service
 * holds (AWS_*, IBMCLOUD_API_KEY, OS_*, the API token, the webhook secrets).
 */
export function notifyEnv(env: NodeJS.ProcessEnv, names: readonly string[]): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const name of [...BASE_ENV, ...names]) if (env[name] !== undefined) out[name] = env[name];
  return out;
}

/** Runs argv with the payload as JSON on stdin; resolves with the exit code. */
export async function runNotifyCommand(argv: string[], payload: unknown, opts: { timeoutMs?: number; env: NodeJS.ProcessEnv; log?: (line: string) => void }): Promise<number> {
  let r;
  try {
    r = await start(argv, { exactEnv: opts.env, input: JSON.stringify(payload, null, 2) + '\n', timeoutMs: opts.timeoutMs ?? 60_000 }).done;
  } catch (err) {
    throw new Error(`notify command ${argv[0]}: ${errorMessage(err)}`, { cause: err });
  }
  if (r.code !== 0) {
    const tail = stderrTail(r.stderr.slice(0, 4096));
    opts.log?.(`notify command ${argv[0]} exited ${r.code ?? r.signal}${tail ? `: ${tail}` : ''}`);
  }
  return r.code ?? 128;
}
