// Small request/response helpers shared by the fake IAM, Resource Manager and VPC handlers.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';

/** Bodies of these APIs are small JSON or form documents; anything bigger is a client bug. */
const MAX_BODY = 1024 * 1024;

export class BodyTooLarge extends Error {}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new BodyTooLarge(`request body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'Content-Length': 0 });
  res.end();
}

/** VPC's error document: a list of {code, message, more_info, target?} and a trace id. */
export function sendVpcError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  target?: { name: string; type: 'field' | 'parameter' | 'header' },
  headers: Record<string, string> = {},
): void {
  const trace = randomUUID();
  sendJson(
    res,
    status,
    {
      errors: [{ code, message, more_info: `https://cloud.ibm.com/docs/vpc?topic=vpc-rias-error-messages#${code}`, ...(target ? { target } : {}) }],
      trace,
    },
    { 'X-Request-Id': trace, ...headers },
  );
}

/** The bearer token of a request, or undefined when the header is missing or not a bearer. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m?.[1];
}
