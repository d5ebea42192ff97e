// The service's HTTP surface (node:http, no framework: a dozen routes). Reads are open (the
// listener defaults to loopback; put a TLS proxy with its own access rules in front to expose it);
// everything that queues a build is authenticated: a bearer token or the forge's webhook secret,
// checked before the body is read (hooks.ts). Every request must name the service in its Host
// (hosts.ts), and the server itself bounds how long and how many connections it holds.

import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { join, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isArch, parseArchList, type Arch } from '../core/arch.ts';
import { FarmError, errorMessage } from '../core/errors.ts';
import { isBuildId } from '../naming.ts';
import { checkBearer, type AuthResult } from './auth.ts';
import { readBody } from './body.ts';
import { BODY_TIMEOUT_MS, Hooks, parseJson } from './hooks.ts';
import { pageHtml } from './page.ts';
import { printable } from './printable.ts';
import { HttpError, json, queued, send } from './reply.ts';
import type { FarmService } from './service.ts';

const API_BODY_LIMIT = 64 * 1024;

/**
 * The Node server's own limits: a client gets 10 s to send its headers and 30 s for the whole
 * request (a slowloris connection is dropped within seconds, not the default minutes), an idle
 * keep-alive connection 5 s, any connection 60 s without traffic; at most 128 connections.
 */
export const SERVER_LIMITS = {
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 5_000,
  idleTimeout: 60_000,
  maxConnections: 128,
  /** How often Node looks for connections past headersTimeout/requestTimeout (default 30 s). */
  connectionsCheckingInterval: 1_000,
} as const;

export function createServiceServer(service: FarmService): Server {
  const l = SERVER_LIMITS;
  const listener = handler(service);
  const server = createServer(
    { headersTimeout: l.headersTimeout, requestTimeout: l.requestTimeout, keepAliveTimeout: l.keepAliveTimeout, connectionsCheckingInterval: l.connectionsCheckingInterval, requireHostHeader: true },
    listener,
  );
  // Expect: 100-continue is answered by the route: a refused body is never asked for (readBody continues).
  server.on('checkContinue', listener);
  server.maxConnections = l.maxConnections;
  server.timeout = l.idleTimeout;
  return server;
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

/** An empty body, or { arches?: "all" | "x86_64,s390x" | ["s390x"] }: the arches to release. */
export function releaseRequest(raw: Buffer): { arches?: Arch[] } {
  if (raw.length === 0 || raw.toString('utf8').trim() === '') return {};
  const value = parseJson(raw);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'send nothing, or a JSON object: { "arches": [...] }');
  const v = value as Record<string, unknown>;
  const unknown = Object.keys(v).filter((k) => k !== 'arches');
  if (unknown.length) throw new HttpError(400, `unknown field(s) ${unknown.join(', ')}: send arches only`);
  const { arches } = manualRequest({ ...(v.arches !== undefined ? { arches: v.arches } : {}) });
  return arches ? { arches } : {};
}

/** Serves a file under builds_dir only: the id and arch are checked by form, then the real path. */
async function serveBuildFile(res: ServerResponse, buildsDir: string, parts: string[]): Promise<void> {
  const [id, a, b] = parts;
  const ok = id !== undefined && isBuildId(id) && ((a !== undefined && isArch(a) && (b === 'build.log' || b === 'smoke.log')) || (a === 'manifest.json' && b === undefined));
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
  const hooks = new Hooks(service);
  return (req, res) => {
    void route(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) service.log(`${req.method} ${printable(req.url ?? '', 200)}: ${errorMessage(err)}`);
      if (!res.headersSent) json(res, status, { error: status === 500 ? 'internal error (see the service log)' : errorMessage(err) });
      else res.destroy();
    });
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Before anything else: a name the service does not know is a browser misled by DNS rebinding.
    const host = service.hosts.check(req.headers.host);
    if (!host.ok) {
      service.quietLog('host', `refused ${printable(req.method ?? '', 10)} ${printable(req.url ?? '', 100)}: ${host.message}`);
      throw new HttpError(host.status, host.message);
    }
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
        service.quietLog('refused-api', `refused POST /api/builds: ${auth.message}`);
        return refuse(res, auth, true);
      }
      const body = manualRequest(parseJson(await readBody(req, res, { limit: API_BODY_LIMIT, timeoutMs: BODY_TIMEOUT_MS })));
      const who = typeof req.headers['user-agent'] === 'string' ? printable(req.headers['user-agent'], 80) : 'unknown client';
      return queued(res, service.submit(service.reason('api', `POST /api/builds (${who})${body.force ? '' : ', if changed'}`, body.force, body.arches)));
    }
    if (path === '/api/images') {
      only('GET');
      return json(res, 200, await service.lifecycle.images());
    }
    const rel = /^\/api\/builds\/([^/]+)\/release$/.exec(path);
    if (rel) {
      only('POST');
      // The same token as POST /api/builds, checked before any of the body is read. A bearer
      // header is not something a cross-site form or image can send, so a page elsewhere cannot.
      const auth = checkBearer(req.headers.authorization, service.env[s.tokenEnv], s.tokenEnv);
      if (!auth.ok) {
        service.quietLog('refused-api', `refused POST /api/builds/…/release: ${auth.message}`);
        return refuse(res, auth, true);
      }
      const build = rel[1]!;
      if (!isBuildId(build)) throw new HttpError(404, `'${printable(build, 40)}' is not a build id`);
      const body = releaseRequest(await readBody(req, res, { limit: API_BODY_LIMIT, timeoutMs: BODY_TIMEOUT_MS }));
      const who = typeof req.headers['user-agent'] === 'string' ? printable(req.headers['user-agent'], 80) : 'unknown client';
      try {
        const outcome = await service.lifecycle.release(build, body.arches, `POST /api/builds/${build}/release, ${who}`);
        return json(res, outcome.failures.length || outcome.hook?.error ? 502 : 200, outcome);
      } catch (err) {
        if (err instanceof FarmError && err.code === 'USAGE') throw new HttpError(404, err.message);
        throw err;
      }
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
      return hooks.github(req, res);
    }
    if (path === '/hooks/gitlab') {
      only('POST');
      return hooks.gitlab(req, res);
    }
    if (path.startsWith('/builds/')) {
      only('GET', 'HEAD');
      return serveBuildFile(res, s.buildsDir, path.slice('/builds/'.length).split('/'));
    }
    throw new HttpError(404, 'not found');
  }
}
