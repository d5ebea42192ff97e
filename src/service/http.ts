// The service's HTTP surface (node:http, no framework: a dozen routes). Reads are open (the
// listener defaults to loopback; put a TLS proxy with its own access rules in front to expose it);
// everything that queues a build is authenticated: a bearer token or the forge's webhook secret.

import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { join, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isArch, parseArchList, type Arch } from '../arch.ts';
import { errorMessage } from '../errors.ts';
import { isBuildId } from '../naming.ts';
import { checkBearer, checkGithubSignature, checkGitlabToken, type AuthResult } from './auth.ts';
import { pageHtml } from './page.ts';
import type { FarmService } from './service.ts';
import type { Reason } from './store.ts';
import { runView } from './views.ts';

const API_BODY_LIMIT = 64 * 1024;
const HOOK_BODY_LIMIT = 25 * 1024 * 1024; // GitHub caps webhook payloads at 25 MB

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: string, type: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, JSON.stringify(value, null, 2) + '\n', 'application/json; charset=utf-8', headers);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) return reject(new HttpError(413, `body larger than ${limit} bytes`));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, `body larger than ${limit} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
}

function refuse(res: ServerResponse, auth: Exclude<AuthResult, { ok: true }>, bearer = false): void {
  json(res, auth.status, { error: auth.message }, bearer && auth.status === 401 ? { 'www-authenticate': 'Bearer realm="farm"' } : {});
}

/** { arches?: "all" | "x86_64,s390x" | ["s390x"], force?: boolean } */
function manualRequest(value: unknown): { arches?: Arch[]; force: boolean } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'send a JSON object: { "arches": [...], "force": true }');
  const v = value as Record<string, unknown>;
  const unknown = Object.keys(v).filter((k) => k !== 'arches' && k !== 'force');
  if (unknown.length) throw new HttpError(400, `unknown field(s) ${unknown.join(', ')}: send arches and/or force`);
  if (v.force !== undefined && typeof v.force !== 'boolean') throw new HttpError(400, 'force must be true or false');
  let arches: Arch[] | undefined;
  if (v.arches !== undefined && v.arches !== 'all') {
    const spec = Array.isArray(v.arches) ? v.arches.join(',') : v.arches;
    if (typeof spec !== 'string') throw new HttpError(400, 'arches must be "all", a comma-separated string or a list');
    try {
      arches = parseArchList(spec);
    } catch (err) {
      throw new HttpError(400, errorMessage(err));
    }
    if (arches.length === 0) throw new HttpError(400, 'arches is empty');
  }
  return { ...(arches ? { arches } : {}), force: v.force !== false };
}

function queued(res: ServerResponse, service: FarmService, reason: Reason): void {
  const result = service.submit(reason);
  if (!result) return json(res, 503, { error: 'the service is stopping; try again once it is back' });
  const view = runView(result.run);
  json(res, 202, { outcome: result.outcome, status: view.status_text, run: view, url: `/api/builds/${view.id}` }, { location: `/api/builds/${view.id}` });
}

/** Serves a file under builds_dir only: the id and arch are checked by form, then the real path. */
async function serveBuildFile(res: ServerResponse, buildsDir: string, parts: string[]): Promise<void> {
  const [id, a, b] = parts;
  const ok = id !== undefined && isBuildId(id) && ((a !== undefined && isArch(a) && b === 'build.log') || (a === 'manifest.json' && b === undefined));
  if (!ok) throw new HttpError(404, 'not found');
  const file = join(buildsDir, ...(parts as string[]));
  let real: string;
  try {
    const root = await realpath(buildsDir);
    real = await realpath(file);
    if (!real.startsWith(root + sep) || !(await stat(real)).isFile()) throw new Error('outside');
  } catch {
    throw new HttpError(404, 'not found');
  }
  res.writeHead(200, {
    'content-type': real.endsWith('.json') ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  await new Promise<void>((resolve) => {
    createReadStream(real).on('error', () => res.destroy()).on('close', resolve).pipe(res);
  });
}

export function handler(service: FarmService): RequestListener {
  const s = service.settings;
  return (req, res) => {
    void route(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) service.log(`${req.method} ${req.url}: ${errorMessage(err)}`);
      if (!res.headersSent) json(res, status, { error: status === 500 ? 'internal error (see the service log)' : errorMessage(err) });
      else res.destroy();
    });
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://farm');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const only = (...methods: string[]) => {
      if (!methods.includes(method)) throw new HttpError(405, `use ${methods.join(' or ')}`);
    };

    if (path === '/') {
      only('GET', 'HEAD');
      const nonce = randomBytes(16).toString('base64');
      return send(res, 200, pageHtml(nonce), 'text/html; charset=utf-8', {
        'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'`,
        'referrer-policy': 'no-referrer',
      });
    }
    if (path === '/healthz') {
      only('GET', 'HEAD');
      return json(res, 200, { ok: true, accepting: service.queue.accepting });
    }
    if (path === '/metrics') {
      only('GET');
      const m = await service.metrics.text();
      return send(res, 200, m.body, m.contentType);
    }
    if (path === '/api/builds') {
      only('GET', 'POST');
      if (method === 'GET') return json(res, 200, await service.snapshot());
      const auth = checkBearer(req.headers.authorization, service.env[s.tokenEnv], s.tokenEnv);
      if (!auth.ok) {
        service.metrics.trigger('api', 'refused');
        return refuse(res, auth, true);
      }
      const body = manualRequest(parseJson(await readBody(req, API_BODY_LIMIT)));
      const who = typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'].slice(0, 80) : 'unknown client';
      return queued(res, service, service.reason('api', `POST /api/builds (${who})${body.force ? '' : ', if changed'}`, body.force, body.arches));
    }
    const one = /^\/api\/builds\/([A-Za-z0-9-]+)$/.exec(path);
    if (one) {
      only('GET');
      const found = await service.lookup(one[1]!);
      if (!found) throw new HttpError(404, `no run or build ${one[1]}`);
      return json(res, 200, found);
    }
    if (path === '/hooks/github') {
      only('POST');
      const secret = s.githubSecretEnv ? service.env[s.githubSecretEnv] : undefined;
      if (!secret) throw new HttpError(404, 'GitHub webhooks are not configured (service.webhooks.github_secret_env)');
      const raw = await readBody(req, HOOK_BODY_LIMIT);
      const auth = checkGithubSignature(raw, header(req, 'x-hub-signature-256'), secret);
      if (!auth.ok) {
        service.metrics.trigger('github', 'refused');
        service.log(`refused a GitHub webhook: ${auth.message}`);
        return refuse(res, auth);
      }
      const event = header(req, 'x-github-event');
      if (event === 'ping') return json(res, 200, { ok: true, pong: true });
      if (event !== 'push') return ignored(res, 'github', `event ${event ?? '(none)'} is not a push`);
      return pushed(res, 'github', parseJson(raw), header(req, 'x-github-delivery'));
    }
    if (path === '/hooks/gitlab') {
      only('POST');
      const token = s.gitlabTokenEnv ? service.env[s.gitlabTokenEnv] : undefined;
      if (!token) throw new HttpError(404, 'GitLab webhooks are not configured (service.webhooks.gitlab_token_env)');
      const auth = checkGitlabToken(header(req, 'x-gitlab-token'), token);
      if (!auth.ok) {
        service.metrics.trigger('gitlab', 'refused');
        service.log(`refused a GitLab webhook: ${auth.message}`);
        await readBody(req, HOOK_BODY_LIMIT).catch(() => undefined);
        return refuse(res, auth);
      }
      const body = parseJson(await readBody(req, HOOK_BODY_LIMIT)) as { object_kind?: unknown };
      if (body.object_kind !== 'push') return ignored(res, 'gitlab', `object_kind ${String(body.object_kind)} is not a push`);
      return pushed(res, 'gitlab', body, header(req, 'x-gitlab-event-uuid'));
    }
    if (path.startsWith('/builds/')) {
      only('GET', 'HEAD');
      return serveBuildFile(res, s.buildsDir, path.slice('/builds/'.length).split('/'));
    }
    throw new HttpError(404, 'not found');
  }

  function ignored(res: ServerResponse, kind: 'github' | 'gitlab', why: string): void {
    service.metrics.trigger(kind, 'ignored');
    json(res, 202, { ignored: why });
  }

  /** A push on the watched branch (any branch for a path source) queues a build. */
  function pushed(res: ServerResponse, kind: 'github' | 'gitlab', body: unknown, delivery: string | undefined): void {
    const push = (typeof body === 'object' && body !== null ? body : {}) as { ref?: unknown; after?: unknown; deleted?: unknown };
    const ref = typeof push.ref === 'string' ? push.ref : '';
    if (s.source.kind === 'git' && ref !== `refs/heads/${s.source.branch}`) return ignored(res, kind, `push to ${ref || '(no ref)'}, not refs/heads/${s.source.branch}`);
    if (push.deleted === true || (typeof push.after === 'string' && /^0+$/.test(push.after))) return ignored(res, kind, `${ref} was deleted`);
    const commit = typeof push.after === 'string' ? push.after.slice(0, 12) : '';
    const detail = `push to ${ref}${commit ? ` (${commit})` : ''}${delivery ? `, delivery ${delivery.slice(0, 40)}` : ''}`;
    queued(res, service, service.reason(kind, detail, true));
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
