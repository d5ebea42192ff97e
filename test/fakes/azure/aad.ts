// A strict fake of Microsoft Entra ID's v2.0 endpoints for confidential clients, as MSAL (under
// @azure/identity's ClientSecretCredential) uses them with a non-public authority host and
// instance discovery off: the tenant's OpenID configuration, then client_credentials grants.
// Tokens are HS256 JWTs with Entra's claims (iss sts.windows.net/<tenant>/, aud the scope's
// resource, tid, appid, oid); Azurite checks iss and aud, the fake ARM also the signature.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { signJwt, verifyJwt } from '../ibm/jwt.ts';
import { readBody, sendJson } from '../ibm/http.ts';

export interface AadState {
  tenantId: string;
  clients: Map<string, string>; // client id -> secret
  secret: Buffer;
  tokenTtlSeconds: number;
  issued: number;
  /** Tokens issued before this many seconds are refused (expireTokens). */
  notBefore: number;
}

export const issuerOf = (tenantId: string) => `https://sts.windows.net/${tenantId}/`;

/** Entra's error body, as MSAL parses it (error, error_description, error_codes). */
function aadError(res: ServerResponse, status: number, error: string, code: number, description: string): void {
  sendJson(res, status, {
    error,
    error_description: `AADSTS${code}: ${description} Trace ID: ${randomUUID()} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`,
    error_codes: [code],
    timestamp: new Date().toISOString(),
    trace_id: randomUUID(),
    correlation_id: randomUUID(),
  });
}

/** Handles /{tenant}/v2.0/.well-known/openid-configuration and /{tenant}/oauth2/v2.0/token. */
export async function handleAad(req: IncomingMessage, res: ServerResponse, u: URL, base: string, aad: AadState): Promise<boolean> {
  const m = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)$/.exec(u.pathname);
  if (!m) return false;
  const [, tenant, what] = m as unknown as [string, string, string];
  if (tenant !== aad.tenantId) {
    req.resume();
    aadError(res, 400, 'invalid_request', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID.`);
    return true;
  }
  if (what.startsWith('v2.0')) {
    if (req.method !== 'GET') return (aadError(res, 405, 'invalid_request', 900561, 'The endpoint only accepts GET requests.'), true);
    const t = `${base}/${tenant}`;
    sendJson(res, 200, {
      token_endpoint: `${t}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${t}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${t}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${t}/openid/userinfo`,
      authorization_endpoint: `${t}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${t}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${t}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'tid', 'oid'],
      tenant_region_scope: 'EU',
      cloud_instance_name: 'microsoftonline.com',
    });
    return true;
  }
  if (req.method !== 'POST') return (aadError(res, 405, 'invalid_request', 900561, 'The endpoint only accepts POST requests.'), true);
  const form = new URLSearchParams(await readBody(req));
  if (form.get('grant_type') !== 'client_credentials') {
    aadError(res, 400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${form.get('grant_type') ?? ''}'.`);
    return true;
  }
  const clientId = form.get('client_id') ?? '';
  const known = aad.clients.get(clientId);
  if (known === undefined) {
    aadError(res, 400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`);
    return true;
  }
  if (form.get('client_secret') !== known) {
    aadError(res, 401, 'invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.');
    return true;
  }
  const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
  const resource = scopes.find((s) => s.endsWith('/.default'));
  if (!resource || scopes.some((s) => s.endsWith('/.default') && s !== resource)) {
    aadError(res, 400, 'invalid_scope', 1002012, `The provided value for scope ${form.get('scope') ?? ''} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
    return true;
  }
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    aud: resource.slice(0, -'/.default'.length),
    iss: issuerOf(tenant),
    iat: now,
    nbf: now,
    exp: now + aad.tokenTtlSeconds,
    tid: tenant,
    appid: clientId,
    oid: clientId,
    sub: clientId,
    idtyp: 'app',
    ver: '1.0',
  };
  aad.issued += 1;
  sendJson(res, 200, { token_type: 'Bearer', expires_in: aad.tokenTtlSeconds, ext_expires_in: aad.tokenTtlSeconds, access_token: signJwt(claims, aad.secret) });
  return true;
}

export type TokenCheck = { ok: true; appId: string } | { ok: false; code: string; message: string };

/** Checks a bearer token for `audience` as ARM does (signature, expiry, issuer, tenant, audience). */
export function checkToken(header: string | undefined, audience: string, aad: AadState): TokenCheck {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return { ok: false, code: 'AuthenticationFailed', message: "Authentication failed. The 'Authorization' header is missing." };
  const v = verifyJwt(m[1]!, aad.secret);
  if (!v.ok) {
    return v.reason === 'expired'
      ? { ok: false, code: 'ExpiredAuthenticationToken', message: 'The access token expiry UTC time is earlier than current UTC time.' }
      : { ok: false, code: 'InvalidAuthenticationToken', message: 'The access token is invalid.' };
  }
  const c = v.claims;
  if (typeof c.iat === 'number' && c.iat < aad.notBefore) return { ok: false, code: 'ExpiredAuthenticationToken', message: 'The access token has been revoked.' };
  if (c.iss !== issuerOf(aad.tenantId) || c.tid !== aad.tenantId) return { ok: false, code: 'InvalidAuthenticationTokenTenant', message: `The access token is from the wrong issuer '${String(c.iss)}'.` };
  if (c.aud !== audience && c.aud !== `${audience}/`) {
    return { ok: false, code: 'InvalidAuthenticationTokenAudience', message: `The access token has been obtained for wrong audience or resource '${String(c.aud)}'. It should exactly match with one of the allowed audiences '${audience}'.` };
  }
  return { ok: true, appId: String(c.appid) };
}
