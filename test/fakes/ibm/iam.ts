// Fake IAM token endpoint: POST /identity/token with grant_type=urn:ibm:params:oauth:grant-type:apikey.
// Answers like iam.cloud.ibm.com does: a JWT access token (the SDK core decodes exp/iat from it),
// and on a bad request a 400 with IAM's {errorCode, errorMessage, context} document.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { readBody, sendJson } from './http.ts';
import { signJwt } from './jwt.ts';

export const APIKEY_GRANT = 'urn:ibm:params:oauth:grant-type:apikey';

export interface IamState {
  secret: Buffer;
  apiKeys: Set<string>;
  accountId: string;
  tokenTtlSeconds: number;
  /** Tokens of an older generation are rejected as expired by the fake services (expireTokens()). */
  generation: number;
  issued: number;
}

function iamError(res: ServerResponse, status: number, errorCode: string, errorMessage: string): void {
  const now = new Date();
  sendJson(res, status, {
    errorCode,
    errorMessage,
    context: {
      requestId: randomUUID(),
      requestType: 'incoming.OIDC_Token',
      userAgent: 'fake',
      // The SDK core recognizes IAM errors by an 'iam' url in the context, as real IAM sends.
      url: 'https://iam.cloud.ibm.com',
      instanceId: 'fake-iam-0',
      threadId: '1',
      host: 'fake-iam',
      startTime: now.toUTCString(),
      endTime: now.toUTCString(),
      elapsedTime: '1',
      locale: 'en_US',
      clusterName: 'fake-iam',
    },
  });
}

export async function handleIam(req: IncomingMessage, res: ServerResponse, path: string, state: IamState): Promise<void> {
  if (path !== '/identity/token') return iamError(res, 404, 'BXNIM0103E', 'Resource not found.');
  if (req.method !== 'POST') return iamError(res, 405, 'BXNIM0105E', 'Method not allowed.');
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    return iamError(res, 400, 'BXNIM0109E', 'Content-Type must be application/x-www-form-urlencoded.');
  }
  const form = new URLSearchParams(await readBody(req));
  const grant = form.get('grant_type');
  if (!grant) return iamError(res, 400, 'BXNIM0109E', 'Property missing or empty. Property: grant_type');
  if (grant !== APIKEY_GRANT) return iamError(res, 400, 'BXNIM0102E', `Unsupported grant type: ${grant}`);
  const apikey = form.get('apikey');
  if (!apikey) return iamError(res, 400, 'BXNIM0109E', 'Property missing or empty. Property: apikey');
  if (!state.apiKeys.has(apikey)) return iamError(res, 400, 'BXNIM0415E', 'Provided API key could not be found.');

  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + state.tokenTtlSeconds;
  const iamId = 'iam-ServiceId-00000000-0000-4000-8000-000000000f4e';
  const access_token = signJwt(
    {
      iam_id: iamId,
      id: iamId,
      realmid: 'iam',
      jti: randomUUID(),
      identifier: 'ServiceId-00000000-0000-4000-8000-000000000f4e',
      sub: 'ServiceId-00000000-0000-4000-8000-000000000f4e',
      sub_type: 'ServiceId',
      account: { valid: true, bss: state.accountId },
      iat,
      exp,
      iss: 'https://iam.cloud.ibm.com/identity',
      grant_type: APIKEY_GRANT,
      scope: 'ibm openid',
      client_id: 'default',
      fake_generation: state.generation,
    },
    state.secret,
  );
  state.issued += 1;
  sendJson(res, 200, {
    access_token,
    refresh_token: 'not_supported',
    ims_user_id: 0,
    token_type: 'Bearer',
    expires_in: state.tokenTtlSeconds,
    expiration: exp,
    scope: 'ibm openid',
  });
}
