// Who may trigger builds: a bearer token for the API, GitHub's HMAC signature and GitLab's token
// for webhooks. Every comparison is constant-time; a secret comes from the environment only.
// Whatever a header alone can decide is decided before the body is read.

import { createHash, createHmac, timingSafeEqual, type Hmac } from 'node:crypto';

/** Equal strings, compared in constant time whatever their lengths (digests have one length). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db) && a.length === b.length;
}

export type AuthResult = { ok: true } | { ok: false; status: 401 | 403; message: string };

/** `Authorization: Bearer <token>`: missing → 401, wrong → 403, no token configured → 403. */
export function checkBearer(header: string | undefined, token: string | undefined, tokenEnv: string): AuthResult {
  if (!token) return { ok: false, status: 403, message: `the API takes no builds: ${tokenEnv} is not set in the service's environment` };
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!m) return { ok: false, status: 401, message: 'missing bearer token (Authorization: Bearer <token>)' };
  return safeEqual(m[1]!, token) ? { ok: true } : { ok: false, status: 403, message: 'wrong token' };
}

export type SignatureHeader = { ok: true; digest: Buffer } | { ok: false; status: 401; message: string };

/**
 * GitHub's X-Hub-Signature-256 ("sha256=" + hex HMAC-SHA256 of the raw body with the secret),
 * parsed before any of the body is read: a request without a well-formed one is refused at once.
 */
export function githubSignatureHeader(header: string | undefined): SignatureHeader {
  if (!header) return { ok: false, status: 401, message: 'missing X-Hub-Signature-256' };
  const m = /^sha256=([0-9a-f]{64})$/i.exec(header.trim());
  if (!m) return { ok: false, status: 401, message: 'malformed X-Hub-Signature-256' };
  return { ok: true, digest: Buffer.from(m[1]!, 'hex') };
}

/** The HMAC that the body is fed to while it is read. */
export function githubHmac(secret: string): Hmac {
  return createHmac('sha256', secret);
}

/** The body's HMAC (computed while reading it) against the header's. */
export function checkGithubDigest(computed: Buffer, header: Extract<SignatureHeader, { ok: true }>): AuthResult {
  return timingSafeEqual(computed, header.digest) ? { ok: true } : { ok: false, status: 401, message: 'bad signature' };
}

/** GitLab's X-Gitlab-Token: the configured token, as is. */
export function checkGitlabToken(header: string | undefined, token: string): AuthResult {
  if (!header) return { ok: false, status: 401, message: 'missing X-Gitlab-Token' };
  return safeEqual(header, token) ? { ok: true } : { ok: false, status: 401, message: 'wrong token' };
}
