// SigV4 checking for the fake: the Authorization header must have AWS4-HMAC-SHA256's shape, name a
// known key and a credential scope of <date>/<region>/<service>/aws4_request, and its signature
// must match one recomputed here from the request as received (canonical request per the SigV4
// specification). Written against the spec rather than with the SDK's signer so that it checks
// the SDK instead of agreeing with it by construction.

import { createHash, createHmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export interface ParsedAuth {
  accessKeyId: string;
  date: string; // YYYYMMDD
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

export type AuthProblem =
  | { kind: 'missing' }
  | { kind: 'malformed'; message: string }
  | { kind: 'unknown-key'; accessKeyId: string }
  | { kind: 'expired'; message: string }
  | { kind: 'mismatch' };

const AUTH_RE =
  /^AWS4-HMAC-SHA256 Credential=([^/\s,]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;_.-]+), ?Signature=([0-9a-f]{64})$/;

export function parseAuthorization(header: string | undefined): ParsedAuth | AuthProblem {
  if (!header) return { kind: 'missing' };
  const m = AUTH_RE.exec(header.trim());
  if (!m) return { kind: 'malformed', message: `Authorization header is not a valid AWS4-HMAC-SHA256 authorization: ${header.split(' ')[0]}` };
  return {
    accessKeyId: m[1]!,
    date: m[2]!,
    region: m[3]!,
    service: m[4]!,
    signedHeaders: m[5]!.split(';'),
    signature: m[6]!,
  };
}

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalQuery(rawQuery: string): string {
  if (!rawQuery) return '';
  const pairs: Array<[string, string]> = [];
  for (const part of rawQuery.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    if (k === 'X-Amz-Signature') continue;
    pairs.push([rfc3986(k), rfc3986(v)]);
  }
  pairs.sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return (Array.isArray(v) ? v.join(',') : v).trim().replace(/\s+/g, ' ');
}

/**
 * Checks a request's signature. `rawPath` is the path as sent (still percent-encoded) and
 * `rawQuery` the query string without '?'. Non-S3 services sign the path encoded once more.
 */
export function verifySignature(
  auth: ParsedAuth,
  req: { method: string; rawPath: string; rawQuery: string; headers: IncomingHttpHeaders; body: Buffer; bodySha256?: string },
  secretFor: (accessKeyId: string) => string | undefined,
  now: Date = new Date(),
): AuthProblem | undefined {
  const secret = secretFor(auth.accessKeyId);
  if (secret === undefined) return { kind: 'unknown-key', accessKeyId: auth.accessKeyId };
  const amzDate = headerValue(req.headers, 'x-amz-date');
  if (!amzDate || !/^\d{8}T\d{6}Z$/.test(amzDate)) return { kind: 'malformed', message: 'missing or malformed X-Amz-Date header' };
  if (!auth.signedHeaders.includes('host') || !auth.signedHeaders.includes('x-amz-date')) {
    return { kind: 'malformed', message: 'SignedHeaders must include host and x-amz-date' };
  }
  if (amzDate.slice(0, 8) !== auth.date) return { kind: 'malformed', message: 'credential scope date does not match X-Amz-Date' };
  const t = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
  if (Math.abs(now.getTime() - t) > 15 * 60_000) {
    return { kind: 'expired', message: `Signature expired: ${amzDate} is more than 15 minutes from the server time` };
  }
  const canonicalHeaders = auth.signedHeaders
    .map((h) => `${h}:${headerValue(req.headers, h) ?? ''}\n`)
    .join('');
  // The payload hash is the server's own hash of the body (a client-sent x-amz-content-sha256 is
  // not trusted), except for an explicitly unsigned payload.
  const payloadHash =
    headerValue(req.headers, 'x-amz-content-sha256') === 'UNSIGNED-PAYLOAD'
      ? 'UNSIGNED-PAYLOAD'
      : (req.bodySha256 ?? createHash('sha256').update(req.body).digest('hex'));
  const canonicalPath = req.rawPath
    .split('/')
    .map((seg) => rfc3986(seg))
    .join('/');
  const canonicalRequest = [
    req.method,
    canonicalPath || '/',
    canonicalQuery(req.rawQuery),
    canonicalHeaders,
    auth.signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  let key: Buffer = createHmac('sha256', `AWS4${secret}`).update(auth.date).digest();
  for (const part of [auth.region, auth.service, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const expected = createHmac('sha256', key).update(stringToSign).digest('hex');
  return expected === auth.signature ? undefined : { kind: 'mismatch' };
}
