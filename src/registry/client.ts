// A small client of the registry HTTP API v2 (distribution spec) for what the coordinator asks:
// HEAD and GET of manifests and GET of blobs, and PUT of a manifest list (publish_image). Authentication follows the registry's
// WWW-Authenticate answer: Basic with the auth file's credentials, or Bearer with a token from the
// realm it names (asked with those credentials, or anonymously). TLS is verified against the
// system's roots plus the CA files of the registry's certs.d directory, as podman and skopeo read
// them (FARM_CERTS_D, then /etc/containers/certs.d, ~/.config/containers/certs.d,
// /etc/docker/certs.d); tls_verify: false turns verification off for that registry only.
// Requests go through node:https (Node's own HTTP parser); bodies are bounded.

import { request, type RequestOptions } from 'node:https';
import { readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { FarmError, errorMessage } from '../core/errors.ts';
import { registerSecret } from '../core/redact.ts';
import type { RegistryCredentials } from './auth-file.ts';

export const LIST_TYPES = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'];
export const MANIFEST_TYPES = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'];
const MAX_BODY = 4 << 20;
const TIMEOUT_MS = 20_000;

export interface RegistryAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export function certsDirs(host: string, env: NodeJS.ProcessEnv): string[] {
  const home = env.HOME || homedir();
  return [
    ...(env.FARM_CERTS_D ? [join(env.FARM_CERTS_D, host)] : []),
    join('/etc/containers/certs.d', host),
    join(home, '.config/containers/certs.d', host),
    join('/etc/docker/certs.d', host),
  ];
}

/** The CA certificates containers tools trust for `host` (every *.crt of its certs.d dirs). */
export async function registryCAs(host: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  const out: string[] = [];
  for (const dir of certsDirs(host, env)) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names.filter((n) => n.endsWith('.crt')).sort()) out.push(await readFile(join(dir, n), 'utf8'));
  }
  return out;
}

/** Parses `Bearer realm="..",service="..",scope=".."` or `Basic realm=".."`. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/.exec(header) ?? [];
  const params: Record<string, string> = {};
  for (const p of (m[2] ?? '').matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: (m[1] ?? '').toLowerCase(), params };
}

/** The registry's own words for a refusal: `401 UNAUTHORIZED: authentication required`. */
export function registryAnswer(r: RegistryAnswer): string {
  let detail = '';
  try {
    const errs = (JSON.parse(r.body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> }).errors ?? [];
    detail = errs.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
  } catch {
    detail = r.body.toString('utf8').slice(0, 200).trim();
  }
  return `${r.status}${detail ? ` ${detail}` : ''}`;
}

export interface ClientOptions {
  /** host[:port] of the API. */
  host: string;
  credentials?: RegistryCredentials | undefined;
  tlsVerify: boolean;
  env?: NodeJS.ProcessEnv;
}

export class RegistryClient {
  private authorization: string | undefined;
  private ca: string[] | undefined;

  constructor(private readonly opts: ClientOptions) {}

  private basic(): string | undefined {
    const c = this.opts.credentials;
    if (!c) return undefined;
    const value = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
    registerSecret(value);
    return value;
  }

  private async raw(url: URL, method: string, headers: Record<string, string>, signal: AbortSignal, body?: Buffer): Promise<RegistryAnswer> {
    this.ca ??= [...rootCertificates, ...(await registryCAs(this.opts.host, this.opts.env ?? process.env))];
    const options: RequestOptions = {
      method,
      headers,
      ca: this.ca,
      rejectUnauthorized: this.opts.tlsVerify,
      timeout: TIMEOUT_MS,
      agent: false,
      signal,
    };
    return new Promise((resolve, reject) => {
      const req = request(url, options, (res) => {
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (d: Buffer) => {
          n += d.length;
          if (n > MAX_BODY) req.destroy(new Error(`the answer of ${url.host} is larger than ${MAX_BODY} bytes`));
          else chunks.push(d);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer from ${url.host} within ${TIMEOUT_MS / 1000} s`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** A token from the Bearer challenge's realm, with the credentials (if any). */
  private async token(params: Record<string, string>, signal: AbortSignal): Promise<string> {
    if (!params.realm) throw new FarmError('REGISTRY', `${this.opts.host} asked for a Bearer token without naming a realm`);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    if (params.scope) url.searchParams.set('scope', params.scope);
    const basic = this.basic();
    const r = await this.raw(url, 'GET', basic ? { authorization: basic } : {}, signal);
    if (r.status !== 200) throw new FarmError('REGISTRY', `${url.host} refused a token for ${params.scope ?? this.opts.host}: ${registryAnswer(r)}`, { hint: authHint(this.opts) });
    const body = JSON.parse(r.body.toString('utf8')) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new FarmError('REGISTRY', `${url.host} answered no token`);
    registerSecret(token);
    return `Bearer ${token}`;
  }

  /** One API request, authenticating once when the registry asks to. */
  async request(method: 'GET' | 'HEAD' | 'PUT', path: string, accept: string[], signal: AbortSignal, put?: { body: Buffer; contentType: string }): Promise<RegistryAnswer> {
    const url = new URL(`https://${this.opts.host}${path}`);
    const bodyHeaders: Record<string, string> = put ? { 'content-type': put.contentType, 'content-length': String(put.body.length) } : {};
    const send = (auth: string | undefined) => this.raw(url, method, { accept: accept.join(', '), ...bodyHeaders, ...(auth ? { authorization: auth } : {}) }, signal, put?.body);
    let r: RegistryAnswer;
    try {
      r = await send(this.authorization);
      if (r.status === 401) {
        const challenge = parseChallenge(String(r.headers['www-authenticate'] ?? ''));
        if (challenge.scheme === 'basic' && this.opts.credentials) this.authorization = this.basic();
        else if (challenge.scheme === 'bearer') this.authorization = await this.token(challenge.params, signal);
        else return r;
        r = await send(this.authorization);
      }
    } catch (err) {
      if (err instanceof FarmError) throw err;
      if (signal.aborted) throw new FarmError('ABORTED', 'cancelled', { cause: err });
      const code = (err as { code?: string }).code;
      throw new FarmError('REGISTRY', `cannot reach https://${this.opts.host}: ${errorMessage(err)}${code && !errorMessage(err).includes(code) ? ` (${code})` : ''}`, {
        hint: /CERT|SELF_SIGNED|VERIFY/.test(code ?? '')
          ? `put the registry's CA in /etc/containers/certs.d/${this.opts.host}/ca.crt (as podman reads it), or set source.tls_verify: false for a registry you trust otherwise`
          : 'check the registry address and that this host reaches it',
      });
    }
    return r;
  }
}

export function authHint(opts: Pick<ClientOptions, 'credentials' | 'host'>): string {
  return opts.credentials
    ? `the credentials for ${opts.host} in ${opts.credentials.file} were refused: log in again (podman login ${opts.host})`
    : `no credentials for ${opts.host} in the containers auth file (REGISTRY_AUTH_FILE, \${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, ~/.docker/config.json): podman login ${opts.host}`;
}
