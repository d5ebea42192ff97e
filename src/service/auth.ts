// Who may trigger builds: a bearer token for the API, GitHub's HMAC signature and GitLab's token
// for webhooks. Every comparison is constant-time; a secret comes from the environment only.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

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

/** GitHub's X-Hub-Signature-256: "sha256=" + hex HMAC-SHA256 of the raw body with the secret. */
export function checkGithubSignature(body: Buffer, header: string | undefined, secret: string): AuthResult {
  if (!header) return { ok: false, status: 401, message: 'missing X-Hub-Signature-256' };
  const m = /^sha256=([0-9a-f]{64})$/i.exec(header.trim());
  if (!m) return { ok: false, status: 401, message: 'malformed X-Hub-Signature-256' };
  const expected = createHmac('sha256', secret).update(body).digest();
  const given = Buffer.from(m[1]!, 'hex');
  return timingSafeEqual(expected, given) ? { ok: true } : { ok: false, status: 401, message: 'bad signature' };
}

/** GitLab's X-Gitlab-Token: the configured token, as is. */
export function checkGitlabToken(header: string | undefined, token: string): AuthResult {
  if (!header) return { ok: false, status: 401, message: 'missing X-Gitlab-Token' };
  return safeEqual(header, token) ? { ok: true } : { ok: false, status: 401, message: 'wrong token' };
}
