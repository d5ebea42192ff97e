// A real S3 server for tests: s3rver (an S3 implementation in Node) on 127.0.0.1, a random port
// and a temp directory, addressed path-style (no bucket.host DNS names on loopback).

import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface S3Server {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverInstance;

// s3rver is CommonJS without type declarations; it is loaded through require with the small
// slice of its API used here typed above.
const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverConstructor;

interface S3rverAccountModule {
  DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void; revokeAccessKey(id: string): void };
}

// s3rver knows one hard-coded key pair (unless `credentials` replaces it); it checks that SigV4
// requests name a known key (it does not recompute V4 signatures).
const ACCESS_KEY_ID = 'S3RVER';
const SECRET_ACCESS_KEY = 'S3RVER';
const REGION = 'us-east-1';

export interface S3Options {
  /** Data directory, kept after stop (default: a temp directory, removed on stop). */
  dir?: string;
  /** Port on 127.0.0.1 (default: any free one). */
  port?: number;
  /**
   * The key pair clients sign with (default S3RVER/S3RVER). s3rver keeps its keys in one
   * process-wide registry: this pair is added to it and the default pair revoked, for every
   * s3rver in the process.
   */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Buckets created at start if missing (s3rver's configureBuckets). */
  buckets?: string[];
}

interface KoaContext {
  params: Record<string, string>;
  query: Record<string, string | undefined>;
  status: number;
  body: unknown;
  store: { getResourcePath(bucket: string, key: string | undefined, resource: string): string };
}
interface RouterLayer {
  stack: Array<(ctx: KoaContext, next: () => Promise<void>) => unknown>;
}
interface S3rverRouter {
  stack: RouterLayer[];
  get(path: string, fn: (ctx: KoaContext, next: () => Promise<void>) => unknown): void;
  delete(path: string, fn: (ctx: KoaContext, next: () => Promise<void>) => unknown): void;
}
type S3ErrorConstructor = new (code: string, message: string, detail?: Record<string, string>) => Error;

let multipartListing = false;

/**
 * s3rver stores multipart uploads in progress (a directory per upload id, holding the key and
 * the parts) but answers ListMultipartUploads and AbortMultipartUpload with NotImplemented /
 * MethodNotAllowed. Real S3 and IBM COS serve both, and they are how a client finds and removes
 * what an interrupted upload left: served here from that same directory, behind s3rver's own
 * authentication (the handlers go right after its authentication layer in its router).
 */
function serveMultipartListing(): void {
  if (multipartListing) return;
  multipartListing = true;
  const router = require('s3rver/lib/routes.js') as S3rverRouter;
  const S3Error = require('s3rver/lib/models/error.js') as S3ErrorConstructor;
  const uploadsDir = (ctx: KoaContext) => ctx.store.getResourcePath(ctx.params.bucket!, undefined, 'uploads');
  router.get('/:bucket', async (ctx, next) => {
    if (!('uploads' in ctx.query)) return next();
    const prefix = ctx.query.prefix ?? '';
    const dir = uploadsDir(ctx);
    const ids = await readdir(dir).catch(() => [] as string[]);
    const uploads: Array<{ Key: string; UploadId: string; Initiated: string; StorageClass: string }> = [];
    for (const id of ids.sort()) {
      const key = await readFile(join(dir, id, 'key'), 'utf8').catch(() => undefined);
      if (key === undefined || !key.startsWith(prefix)) continue;
      const st = await stat(join(dir, id));
      uploads.push({ Key: key, UploadId: id, Initiated: st.mtime.toISOString(), StorageClass: 'STANDARD' });
    }
    uploads.sort((a, b) => (a.Key === b.Key ? a.UploadId.localeCompare(b.UploadId) : a.Key < b.Key ? -1 : 1));
    ctx.body = {
      ListMultipartUploadsResult: {
        '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
        Bucket: ctx.params.bucket,
        KeyMarker: '',
        UploadIdMarker: '',
        Prefix: prefix,
        MaxUploads: 1000,
        IsTruncated: false,
        ...(uploads.length ? { Upload: uploads } : {}),
      },
    };
  });
  router.delete('/:bucket/:key+', async (ctx, next) => {
    const id = ctx.query.uploadId;
    if (id === undefined) return next();
    const dir = join(uploadsDir(ctx), id);
    const key = /^[0-9a-f]+$/.test(id) ? await readFile(join(dir, 'key'), 'utf8').catch(() => undefined) : undefined;
    if (key !== ctx.params.key) {
      throw new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { UploadId: id });
    }
    await rm(dir, { recursive: true, force: true });
    ctx.status = 204;
  });
  const added = router.stack.splice(router.stack.length - 2, 2);
  const auth = router.stack.findIndex((layer) => layer.stack.some((fn) => fn.name === 'authentication'));
  if (auth < 0) throw new Error("s3rver's router has no authentication layer: its layout changed");
  router.stack.splice(auth + 1, 0, ...added);
}

export async function startS3(opts: S3Options = {}): Promise<S3Server> {
  serveMultipartListing();
  const ownDir = opts.dir === undefined;
  const directory = opts.dir ?? (await mkdtemp(join(tmpdir(), 'farm-s3-')));
  const credentials = opts.credentials ?? { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY };
  if (opts.credentials) {
    const account = require('s3rver/lib/models/account.js') as S3rverAccountModule;
    account.DUMMY_ACCOUNT.createKeyPair(credentials.accessKeyId, credentials.secretAccessKey);
    if (credentials.accessKeyId !== ACCESS_KEY_ID) account.DUMMY_ACCOUNT.revokeAccessKey(ACCESS_KEY_ID);
  }
  const server = new S3rver({
    address: '127.0.0.1',
    port: opts.port ?? 0,
    configureBuckets: (opts.buckets ?? []).map((name) => ({ name })),
    directory,
    silent: true,
    vhostBuckets: false,
    resetOnClose: false,
  });
  const address = await server.run();
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    region: REGION,
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: credentials.secretAccessKey,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close();
      if (ownDir) await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * Config for an S3Client (@aws-sdk/client-s3) talking to the server.
 *
 * Checksums: since 2025 the SDK's S3 clients compute CRC32 "flexible checksums" on every upload
 * and, for streamed bodies, send them as aws-chunked bodies with trailing checksum headers
 * (Content-Encoding: aws-chunked, x-amz-decoded-content-length). s3rver (like IBM COS and several
 * other S3-compatible servers) does not decode aws-chunked and would store the chunk framing as
 * object data. 'WHEN_REQUIRED' sends checksums only for operations that require one, so bodies
 * go as plain bytes; responses are then not checksum-validated either.
 */
export function s3ClientConfig(s3: Pick<S3Server, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey'>) {
  return {
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED' as const,
    responseChecksumValidation: 'WHEN_REQUIRED' as const,
  };
}
