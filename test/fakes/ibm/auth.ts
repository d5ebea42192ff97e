// Bearer-token checks shared by the fake services: a token the fake IAM signed and that has not expired.

import type { IncomingMessage } from 'node:http';
import { bearerToken } from './http.ts';
import { verifyJwt } from './jwt.ts';
import type { IamState } from './iam.ts';

export type BearerCheck = { ok: true; accountId: string } | { ok: false; code: string; message: string };

export function checkBearer(req: IncomingMessage, iam: IamState): BearerCheck {
  const token = bearerToken(req);
  if (!token) return { ok: false, code: 'not_authorized', message: 'Missing or malformed Authorization header: a bearer token is required' };
  const v = verifyJwt(token, iam.secret);
  if (!v.ok) {
    return v.reason === 'expired'
      ? { ok: false, code: 'not_authorized', message: 'The provided token is expired' }
      : { ok: false, code: 'not_authorized', message: 'The provided token is invalid' };
  }
  if (v.claims.fake_generation !== iam.generation) {
    return { ok: false, code: 'not_authorized', message: 'The provided token is expired' };
  }
  const account = v.claims.account as { bss?: unknown } | undefined;
  return { ok: true, accountId: typeof account?.bss === 'string' ? account.bss : '' };
}
