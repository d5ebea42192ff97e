// How the fake ARM (and tests) read the lab's Blob service (Azurite): a read-only SAS made from
// the account key, over https with the lab CA (the SDK's pipeline cannot take a CA per client,
// and NODE_EXTRA_CA_CERTS only works from a process's start).

import { createHash } from 'node:crypto';
import { request } from 'node:https';
import { BlobSASPermissions, ContainerSASPermissions, StorageSharedKeyCredential, generateBlobSASQueryParameters } from '@azure/storage-blob';
import type { BlobFacts, BlobProbe } from './compute.ts';

export interface BlobAccount {
  name: string;
  key: string;
  /** Blob service URL, path-style: https://127.0.0.1:19010/<account>. */
  url: string;
  ca: string;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function send(url: URL, method: string, headers: Record<string, string>, ca: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { 'x-ms-version': '2021-12-02', ...headers }, ca, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Splits a blob URI of this account into container and blob name; undefined if another account's. */
export function blobPath(account: BlobAccount, uri: string): { container: string; blob: string } | undefined {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return undefined;
  }
  const base = new URL(account.url);
  if (u.origin !== base.origin) return undefined;
  const prefix = base.pathname.replace(/\/+$/, '') + '/';
  if (!u.pathname.startsWith(prefix)) return undefined;
  const [container, ...rest] = u.pathname.slice(prefix.length).split('/');
  if (!container || rest.length === 0) return undefined;
  return { container, blob: decodeURIComponent(rest.join('/')) };
}

function sas(account: BlobAccount, container: string, blob?: string): string {
  const cred = new StorageSharedKeyCredential(account.name, account.key);
  const expiresOn = new Date(Date.now() + 10 * 60_000);
  const permissions = blob ? BlobSASPermissions.parse('r') : ContainerSASPermissions.parse('rl');
  return generateBlobSASQueryParameters({ containerName: container, blobName: blob, permissions, expiresOn }, cred).toString();
}

export function blobProbe(account: BlobAccount): BlobProbe {
  return async (uri) => {
    const where = blobPath(account, uri);
    if (!where) return {};
    const url = new URL(`${account.url.replace(/\/+$/, '')}/${where.container}/${where.blob.split('/').map(encodeURIComponent).join('/')}?${sas(account, where.container, where.blob)}`);
    const head = await send(url, 'HEAD', {}, account.ca);
    if (head.status === 404) return {};
    if (head.status !== 200) throw new Error(`HEAD ${uri}: ${head.status}`);
    const size = Number(head.headers['content-length']);
    const facts: BlobFacts = { size, blobType: String(head.headers['x-ms-blob-type'] ?? '') };
    if (size >= 512) {
      const tail = await send(url, 'GET', { 'x-ms-range': `bytes=${size - 512}-${size - 1}` }, account.ca);
      if (tail.status === 206 || tail.status === 200) facts.footer = tail.body.subarray(-512);
    }
    return facts;
  };
}

/** Blob names in a container (tests: what staging blobs are left). */
export async function listBlobs(account: BlobAccount, container: string): Promise<string[]> {
  const url = new URL(`${account.url.replace(/\/+$/, '')}/${container}?restype=container&comp=list&${sas(account, container)}`);
  const res = await send(url, 'GET', {}, account.ca);
  if (res.status !== 200) throw new Error(`list ${container}: ${res.status} ${res.body.toString('utf8').slice(0, 200)}`);
  return [...res.body.toString('utf8').matchAll(/<Name>([^<]*)<\/Name>/g)].map((m) => m[1]!.replaceAll('&amp;', '&'));
}

/** A blob's bytes (tests: the page blob matches the file). */
export async function readBlob(account: BlobAccount, container: string, blob: string): Promise<Buffer> {
  const url = new URL(`${account.url.replace(/\/+$/, '')}/${container}/${blob.split('/').map(encodeURIComponent).join('/')}?${sas(account, container, blob)}`);
  const res = await send(url, 'GET', {}, account.ca);
  if (res.status !== 200) throw new Error(`GET ${blob}: ${res.status}`);
  return res.body;
}

/** sha256 of a blob's bytes, streamed (tests: the page blob is the file, byte for byte). */
export function hashBlob(account: BlobAccount, uri: string): Promise<string> {
  const where = blobPath(account, uri);
  if (!where) return Promise.reject(new Error(`${uri} is not in account ${account.name}`));
  const url = new URL(`${account.url.replace(/\/+$/, '')}/${where.container}/${where.blob.split('/').map(encodeURIComponent).join('/')}?${sas(account, where.container, where.blob)}`);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers: { 'x-ms-version': '2021-12-02' }, ca: account.ca }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`GET ${uri}: ${res.statusCode}`));
      const h = createHash('sha256');
      res.on('data', (c: Buffer) => h.update(c));
      res.on('end', () => resolve(h.digest('hex')));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Writes a page blob of `size` bytes holding `data` at 0 (tests: sources the fake must refuse). */
export async function putPageBlob(account: BlobAccount, container: string, blob: string, size: number, data: Buffer): Promise<string> {
  const cred = new StorageSharedKeyCredential(account.name, account.key);
  const token = generateBlobSASQueryParameters(
    { containerName: container, blobName: blob, permissions: BlobSASPermissions.parse('rcw'), expiresOn: new Date(Date.now() + 600_000) },
    cred,
  ).toString();
  const uri = `${account.url.replace(/\/+$/, '')}/${container}/${encodeURIComponent(blob)}`;
  const url = new URL(`${uri}?${token}`);
  const made = await send(url, 'PUT', { 'x-ms-blob-type': 'PageBlob', 'x-ms-blob-content-length': String(size), 'content-length': '0' }, account.ca);
  if (made.status !== 201) throw new Error(`create ${blob}: ${made.status} ${made.body.toString('utf8').slice(0, 300)}`);
  if (data.length > 0) {
    const page = new URL(`${uri}?comp=page&${token}`);
    const put = await sendBody(page, { 'x-ms-page-write': 'update', 'x-ms-range': `bytes=0-${data.length - 1}` }, data, account.ca);
    if (put.status !== 201) throw new Error(`put page ${blob}: ${put.status} ${put.body.toString('utf8').slice(0, 300)}`);
  }
  return uri;
}

function sendBody(url: URL, headers: Record<string, string>, body: Buffer, ca: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers: { 'x-ms-version': '2021-12-02', 'content-length': String(body.length), ...headers }, ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
