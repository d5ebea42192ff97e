// A real S3 server for tests: s3rver (an S3 implementation in Node) on 127.0.0.1, a random port
// and a temp directory, addressed path-style (no bucket.host DNS names on loopback).

import { mkdtemp, rm } from 'node:fs/promises';
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

export async function startS3(opts: S3Options = {}): Promise<S3Server> {
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
