// The front door of the fake Cloud Object Storage: COS's S3 API takes HMAC-signed requests and
// IAM bearer tokens ("Authorization: Bearer <IAM token>"). Behind it the lab's S3 server keeps the
// objects. An HMAC request goes through as it came, Host header included (the S3 server checks
// its access key; s3rver does not recompute V4 signatures); a bearer request is checked against
// the fake IAM (signature, expiry) and goes through without it, as the account's own access;
// anything else is refused with S3's AccessDenied, as COS refuses anonymous access to a private
// bucket. Streams both ways.

import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { checkBearer } from './auth.ts';
import type { IamState } from './iam.ts';

export type CosAuth = 'hmac' | 'bearer' | 'none';

export interface CosDoorRequest {
  method: string;
  path: string;
  auth: CosAuth;
  status: number;
}

function sendS3Error(res: ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><Resource></Resource><RequestId>fake-cos</RequestId></Error>`;
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function authOf(req: IncomingMessage): CosAuth {
  const h = req.headers.authorization ?? '';
  if (/^bearer /i.test(h)) return 'bearer';
  const presigned = [...new URL(req.url ?? '/', 'http://x').searchParams.keys()].some((k) => k.toLowerCase() === 'x-amz-signature');
  if (h.startsWith('AWS4-HMAC-SHA256 ') || presigned) return 'hmac';
  return 'none';
}

/** Handles one request of the door: checks it, then relays it to `upstream` (the S3 server). */
export async function handleCosDoor(req: IncomingMessage, res: ServerResponse, iam: IamState, upstream: URL): Promise<void> {
  const auth = authOf(req);
  const headers = { ...req.headers };
  if (auth === 'none') {
    req.resume();
    sendS3Error(res, 403, 'AccessDenied', 'Access Denied');
    return;
  }
  if (auth === 'bearer') {
    const check = checkBearer(req, iam);
    if (!check.ok) {
      req.resume();
      sendS3Error(res, 403, 'AccessDenied', check.message);
      return;
    }
    delete headers.authorization;
  }
  await new Promise<void>((resolve, reject) => {
    const out = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        up.on('end', resolve);
        up.on('error', reject);
      },
    );
    out.on('error', reject);
    req.pipe(out);
  });
}
