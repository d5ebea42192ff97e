// AWS upload benchmarks, all on loopback:
//  1. EBS direct of a 4 GiB sparse raw holding 1 GiB of data to the EC2/EBS fake: bytes sent vs
//     data bytes (target <= 1.05x) and time.
//  2. S3 multipart upload of a 1 GiB file to an S3 server (s3rver): farm's uploader code
//     (lib-storage, parallel parts) vs `aws s3 cp` (Debian's awscli) to the same server, in one
//     run (target: farm at least as fast).
// Run directly: node bin/tsnode.js test/bench/aws.bench.ts

import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { CreateBucketCommand, DeleteObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { awsTargetSchema } from '../../uploaders/aws/schema.ts';
import { createAwsUploader, DEFAULT_PART_SIZE, DEFAULT_QUEUE_SIZE } from '../../uploaders/aws/index.ts';
import { AwsClients } from '../../uploaders/aws/clients.ts';
import { uploadObject } from '../../uploaders/aws/s3-import.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import { startAwsFake, type AwsFake } from '../fakes/aws/server.ts';
import { s3ClientConfig, startS3, type S3Server } from '../support/s3.ts';

const run = promisify(execFile);
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

export interface Row {
  bench: string;
  tool: string;
  seconds: number;
  /** Size of the input (apparent size for a sparse raw). */
  bytes: number;
  /** Bytes that went over the wire to the service. */
  sentBytes: number;
  /** For sparse inputs: bytes of actual data; sentBytes / dataBytes is the overhead. */
  dataBytes?: number;
  mibPerSecond: number;
  target: string;
  pass: boolean;
}

// Debian's awscli, not a pip one that may be first on PATH: the comparison is with the packaged tool.
const AWS_CLI = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';

// --- servers in their own processes, so the client under test has this process to itself and
// `aws s3 cp` (its own process) meets the same conditions.

interface Served<T> {
  info: T;
  /** Sends a command line, answers the reply line as JSON. */
  ask(command: string): Promise<unknown>;
  stop(): Promise<void>;
}

export async function serve<T>(kind: 's3' | 'aws', dir: string, extra: string[] = []): Promise<Served<T>> {
  const tsnode = fileURLToPath(new URL('../../bin/tsnode.js', import.meta.url));
  const self = fileURLToPath(import.meta.url);
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [tsnode, self, '--serve', kind, dir, ...extra], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<unknown> => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`${kind} server exited: ${stderr.trim()}`);
    return JSON.parse(value as string);
  };
  const info = (await next()) as T;
  return {
    info,
    async ask(command) {
      child.stdin.write(`${command}\n`);
      return next();
    },
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      await exited;
    },
  };
}

/** Child side: start the server, print its details, answer "stats" with the fake's counters. */
async function serveMain(kind: string, dir: string): Promise<void> {
  let stop: () => Promise<void>;
  let fake: AwsFake | undefined;
  if (kind === 's3') {
    const s3: S3Server = await startS3({ dir });
    stop = () => s3.stop();
    console.log(JSON.stringify({ endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }));
  } else {
    fake = await startAwsFake({ dir, timing: { snapshotCompleteMs: 50, imageAvailableMs: 50 } });
    stop = () => fake!.stop();
    console.log(JSON.stringify({ endpoint: fake.endpoint, credentials: fake.credentials }));
  }
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'stats') console.log(JSON.stringify(fake ? fake.stats.putSnapshotBlock : {}));
  }
  await stop();
}

async function makeSparse(path: string, size: number, data: number): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(size);
  // 1 MiB extents spread evenly: like a filesystem image, data scattered among holes.
  const extents = data / MIB;
  const stride = size / extents;
  const buf = randomBytes(MIB);
  for (let i = 0; i < extents; i++) {
    buf[0] = (i % 255) + 1; // distinct and never an all-zero block
    await fh.write(buf, 0, MIB, i * stride);
  }
  await fh.close();
}

async function makeDense(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  const buf = randomBytes(16 * MIB);
  for (let off = 0; off < size; off += buf.length) {
    buf[0] = off / buf.length;
    await fh.write(buf, 0, buf.length, off);
  }
  await fh.close();
}

async function benchEbsDirect(dir: string): Promise<Row> {
  const size = 4 * GIB;
  const data = 1 * GIB;
  const path = join(dir, 'sparse.raw');
  await makeSparse(path, size, data);
  const fake = await serve<{ endpoint: string; credentials: { accessKeyId: string; secretAccessKey: string } }>('aws', await mkdtemp(join(dir, 'fake-')));
  try {
    const target = awsTargetSchema.parse({ kind: 'aws', region: 'us-east-1', endpoint: fake.info.endpoint });
    const up = createAwsUploader(target, {
      credentials: fake.info.credentials,
      wait: { minDelaySeconds: 0.05, maxDelaySeconds: 0.2, maxWaitSeconds: 60 },
    });
    const artifact: Artifact = {
      buildId: 'bench',
      arch: 'x86_64',
      type: 'ami',
      imageName: 'bench',
      disk: { path, name: 'image/disk.raw', size, sha256: '', format: 'raw' },
      extra: [],
      worker: 'bench',
      builtAt: new Date().toISOString(),
    };
    const t0 = performance.now();
    await up.upload(artifact, 'farm-bench-ebs', { signal: AbortSignal.timeout(30 * 60_000), log: () => {}, tags: {} });
    const seconds = (performance.now() - t0) / 1000;
    const sent = ((await fake.ask('stats')) as AwsFake['stats']['putSnapshotBlock']).bytesReceived;
    return {
      bench: 'EBS direct, 4 GiB raw with 1 GiB data',
      tool: 'farm',
      seconds,
      bytes: size,
      sentBytes: sent,
      dataBytes: data,
      mibPerSecond: data / MIB / seconds,
      target: 'sent <= 1.05 x data',
      pass: sent <= 1.05 * data,
    };
  } finally {
    await fake.stop();
  }
}

async function benchS3(dir: string): Promise<Row[]> {
  const size = 1 * GIB;
  const path = join(dir, 'dense.raw');
  await makeDense(path, size);
  const server = await serve<S3Server>('s3', await mkdtemp(join(dir, 's3-')));
  const s3 = server.info;
  const client = new S3Client(s3ClientConfig(s3));
  const bucket = 'farm-bench';
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const rows: Row[] = [];

    // farm: the uploader's own S3 path (same client settings and part defaults as s3-import).
    const clients = new AwsClients(s3.region, {
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      s3Endpoint: s3.endpoint,
      maxAttempts: 5,
      maxSockets: 16,
      requestTimeoutMs: 120_000,
    });
    let t0 = performance.now();
    await uploadObject({
      s3: clients.s3(),
      bucket,
      key: 'farm.raw',
      path,
      size,
      partSize: DEFAULT_PART_SIZE,
      queueSize: DEFAULT_QUEUE_SIZE,
      signal: AbortSignal.timeout(30 * 60_000),
      onProgress: () => {},
    });
    const farmSeconds = (performance.now() - t0) / 1000;
    clients.destroy();
    const farmHead = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'farm.raw' }));
    if (farmHead.ContentLength !== size) throw new Error(`farm stored ${farmHead.ContentLength} bytes, expected ${size}`);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'farm.raw' }));

    // aws s3 cp with credentials from the environment and no profile or metadata lookups.
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_DEFAULT_REGION: s3.region,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(dir, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
    };
    t0 = performance.now();
    await run(AWS_CLI, ['s3', 'cp', '--only-show-errors', '--endpoint-url', s3.endpoint, path, `s3://${bucket}/cli.raw`], {
      env,
      timeout: 30 * 60_000,
    });
    const cliSeconds = (performance.now() - t0) / 1000;
    const cliHead = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cli.raw' }));
    if (cliHead.ContentLength !== size) throw new Error(`aws s3 cp stored ${cliHead.ContentLength} bytes, expected ${size}`);
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'cli.raw' }));
    const { stdout: version } = await run(AWS_CLI, ['--version'], { env });

    rows.push({
      bench: 'S3 multipart, 1 GiB',
      tool: `farm (lib-storage, ${DEFAULT_PART_SIZE / MIB} MiB x ${DEFAULT_QUEUE_SIZE})`,
      seconds: farmSeconds,
      bytes: size,
      sentBytes: size,
      mibPerSecond: size / MIB / farmSeconds,
      target: 'farm <= aws s3 cp time',
      pass: farmSeconds <= cliSeconds,
    });
    rows.push({
      bench: 'S3 multipart, 1 GiB',
      tool: `aws s3 cp (${version.trim().split(' ')[0]})`,
      seconds: cliSeconds,
      bytes: size,
      sentBytes: size,
      mibPerSecond: size / MIB / cliSeconds,
      target: 'reference',
      pass: true,
    });
    return rows;
  } finally {
    client.destroy();
    await server.stop();
  }
}

export async function runAwsBench(): Promise<Row[]> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-aws-bench-'));
  try {
    const rows = [await benchEbsDirect(dir)];
    await rm(join(dir, 'sparse.raw'), { force: true });
    rows.push(...(await benchS3(dir)));
    return rows;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatRows(rows: Row[]): string {
  const gib = (n: number) => `${(n / GIB).toFixed(2)} GiB`;
  const lines = [
    '| bench | tool | time (s) | input | sent | sent/data | MiB/s | target | ok |',
    '|---|---|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const r of rows) {
    const ratio = r.dataBytes ? (r.sentBytes / r.dataBytes).toFixed(3) : '-';
    lines.push(
      `| ${r.bench} | ${r.tool} | ${r.seconds.toFixed(2)} | ${gib(r.bytes)} | ${gib(r.sentBytes)} | ${ratio} | ${r.mibPerSecond.toFixed(1)} | ${r.target} | ${r.pass ? 'yes' : 'NO'} |`,
    );
  }
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && process.argv[2] === '--serve') {
  serveMain(process.argv[3]!, process.argv[4]!).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runAwsBench().then(
    (rows) => {
      console.log(formatRows(rows));
      if (rows.some((r) => !r.pass)) process.exitCode = 1;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
