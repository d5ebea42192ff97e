// POST /hooks/github and /hooks/gitlab. Nobody is trusted before the secret checks out, so
// everything a header can decide is decided before reading the body: GitLab's token is a header,
// and is checked first; GitHub's HMAC covers the body, so its event and the signature's form are
// checked first, then the body (at most HOOK_BODY_LIMIT, at most UNVERIFIED_BODIES at once) is
// read once, through the HMAC, and parsed only when the signature matches.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkGithubDigest, checkGitlabToken, githubHmac, githubSignatureHeader, type AuthResult } from './auth.ts';
import { readBody, Slots } from './body.ts';
import { printable } from './printable.ts';
import { githubPush, gitlabPush, type Push } from './pushes.ts';
import { HttpError, json, queued } from './reply.ts';
import type { FarmService } from './service.ts';

/**
 * GitHub caps payloads at 25 MB, but the farm needs a push's ref and head commit only. 1 MiB
 * (nginx's default client_max_body_size, which many receivers sit behind) holds any push but one
 * listing thousands of changed files; that one is refused (413) and the source poller or the
 * schedule picks its change up.
 */
export const HOOK_BODY_LIMIT = 1 << 20;
/** GitHub bodies are read before they can be authenticated: this many at once; more get 503. */
export const UNVERIFIED_BODIES = 4;
/** GitHub gives up on a delivery after 10 s: a body still arriving then is stalled or hostile. */
export const BODY_TIMEOUT_MS = 10_000;

export type HookKind = 'github' | 'gitlab';

export class Hooks {
  private readonly unverified = new Slots(UNVERIFIED_BODIES);

  constructor(private readonly service: FarmService) {}

  async github(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const s = this.service.settings;
    const secret = s.githubSecretEnv ? this.service.env[s.githubSecretEnv] : undefined;
    if (!secret) throw new HttpError(404, 'GitHub webhooks are not configured (service.webhooks.github_secret_env)');
    const event = header(req, 'x-github-event');
    if (!event) return this.refuse(res, 'github', { ok: false, status: 400, message: 'missing X-GitHub-Event' });
    if (event !== 'push' && event !== 'ping') return this.ignored(res, 'github', `event ${printable(event, 60)} is not a push`);
    const signature = githubSignatureHeader(header(req, 'x-hub-signature-256'));
    if (!signature.ok) return this.refuse(res, 'github', signature);
    const release = this.unverified.take();
    if (!release) {
      return this.refuse(res, 'github', { ok: false, status: 503, message: `${UNVERIFIED_BODIES} unverified webhook bodies are being read already; try again` }, { 'retry-after': '10' });
    }
    const hmac = githubHmac(secret);
    let body: Buffer;
    try {
      body = await readBody(req, res, { limit: HOOK_BODY_LIMIT, timeoutMs: BODY_TIMEOUT_MS, onChunk: (c) => hmac.update(c) });
    } catch (err) {
      if (err instanceof HttpError) return this.refuse(res, 'github', { ok: false, status: err.status, message: err.message });
      throw err;
    } finally {
      release();
    }
    const auth = checkGithubDigest(hmac.digest(), signature);
    if (!auth.ok) return this.refuse(res, 'github', auth);
    if (event === 'ping') return json(res, 200, { ok: true, pong: true });
    return this.pushed(res, 'github', githubPush(parseJson(body), header(req, 'x-github-delivery')));
  }

  async gitlab(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const s = this.service.settings;
    const token = s.gitlabTokenEnv ? this.service.env[s.gitlabTokenEnv] : undefined;
    if (!token) throw new HttpError(404, 'GitLab webhooks are not configured (service.webhooks.gitlab_token_env)');
    const auth = checkGitlabToken(header(req, 'x-gitlab-token'), token);
    if (!auth.ok) return this.refuse(res, 'gitlab', auth);
    const event = header(req, 'x-gitlab-event');
    if (event !== undefined && event !== 'Push Hook') return this.ignored(res, 'gitlab', `event ${printable(event, 60)} is not a push`);
    const body = parseJson(await readBody(req, res, { limit: HOOK_BODY_LIMIT, timeoutMs: BODY_TIMEOUT_MS })) as { object_kind?: unknown };
    if (body.object_kind !== 'push') return this.ignored(res, 'gitlab', `object_kind ${printable(String(body.object_kind), 60)} is not a push`);
    // GitLab repeats Idempotency-Key on retries; X-Gitlab-Event-UUID is shared by the hooks of one event.
    return this.pushed(res, 'gitlab', gitlabPush(body, header(req, 'idempotency-key') ?? header(req, 'x-gitlab-event-uuid')));
  }

  private refuse(res: ServerResponse, kind: HookKind, auth: Exclude<AuthResult, { ok: true }> | { ok: false; status: number; message: string }, headers: Record<string, string> = {}): void {
    this.service.metrics.trigger(kind, 'refused');
    this.service.quietLog(`refused-${kind}`, `refused a ${kind === 'github' ? 'GitHub' : 'GitLab'} webhook: ${auth.message}`);
    json(res, auth.status, { error: auth.message }, headers);
  }

  private ignored(res: ServerResponse, kind: HookKind, why: string): void {
    this.service.metrics.trigger(kind, 'ignored');
    json(res, 202, { ignored: why });
  }

  /** A push on the watched branch (any branch for a path source) of a commit not yet built queues a build. */
  private pushed(res: ServerResponse, kind: HookKind, push: Push): void {
    // Before the delivery is remembered: the forge's retry after the restart must still count.
    if (!this.service.queue.accepting) {
      this.service.metrics.trigger(kind, 'refused');
      return queued(res, undefined);
    }
    const decision = this.service.pushes.decide(kind, push);
    if (!decision.start) {
      this.service.log(`${kind} push ignored: ${decision.why}`);
      return this.ignored(res, kind, decision.why);
    }
    queued(res, this.service.submit({ ...this.service.reason(kind, decision.detail, true), ...(decision.commit ? { commit: decision.commit } : {}) }));
  }
}

export function parseJson(body: Buffer): unknown {
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
