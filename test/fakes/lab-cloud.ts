// The lab's cloud services in one long-running process, on fixed loopback ports:
//   127.0.0.1:19000  S3 (s3rver): AWS s3-import staging and IBM Cloud Object Storage
//   127.0.0.1:19001  AWS fake: EC2 + EBS direct; ImportSnapshot reads from that S3 server
//   127.0.0.1:19002  IBM fake: IAM, Resource Manager, VPC (/{region}/v1)
//   127.0.0.1:19003  IBM Cloud Object Storage: HMAC or IAM bearer, in front of that S3 server
// One key pair serves S3, EC2/EBS and COS HMAC (so the SDK's default chain gives one identity);
// the IBM API key and the key signing its IAM tokens are the lab's own. All are generated once and
// kept in <dir>/secrets.json, so tokens issued before a restart stay valid after it.
// State (buckets, objects, snapshots, images) lives in <dir> and survives restarts. Writes
// <dir>/env (0600) for `. "$(scripts/lab env)"`; logs to <dir>/lab-cloud.log.
//
//   node bin/tsnode.js test/fakes/lab-cloud.ts --dir .lab/cloud [--clouds-yaml PATH]
//     [--ports S3,AWS,IBM,COS]   other ports (tests run a second instance beside the lab's)
//
// Started and stopped by scripts/lab.d/services/cloud.sh (pid file); SIGTERM stops it cleanly.

import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startAwsFake, type AwsFake } from './aws/server.ts';
import { startIbmFake, type IbmFake } from './ibm/index.ts';
import { s3ClientConfig, startS3, type S3Server } from '../support/s3.ts';

export const LAB_CLOUD_PORTS = { s3: 19000, aws: 19001, ibm: 19002, cos: 19003 } as const;
export const LAB_BUCKETS = { awsImports: 'farm-lab-imports', ibmCos: 'farm-lab-cos' } as const;
export const LAB_RESOURCE_GROUP = 'farm-lab';
const AWS_REGIONS = ['us-east-1', 'us-west-2', 'eu-central-1', 'eu-west-1', 'ap-southeast-1'];
const HOST = '127.0.0.1';
// Stopping waits this long for servers to close (open uploads are cut after it).
const STOP_TIMEOUT_MS = 10_000;

interface Secrets {
  accessKeyId: string;
  secretAccessKey: string;
  ibmApiKey: string;
  /** Signs the fake IAM's tokens (base64); kept so tokens issued before a restart stay valid. Added later: may be absent. */
  ibmTokenSecret?: string;
  ibmAccountId: string;
  resourceGroupIds: Record<string, string>;
}

const USAGE = 'usage: lab-cloud.ts --dir STATE_DIR [--clouds-yaml PATH] [--ports S3,AWS,IBM,COS]';
const { values: args } = parseArgs({
  options: { dir: { type: 'string' }, 'clouds-yaml': { type: 'string' }, ports: { type: 'string' } },
  strict: true,
});
if (!args.dir) {
  console.error(USAGE);
  process.exit(2);
}
const ports = (() => {
  if (args.ports === undefined) return LAB_CLOUD_PORTS;
  const [s3, aws, ibm, cos, ...rest] = args.ports.split(',').map(Number);
  const ok = (p: number | undefined): p is number => p !== undefined && Number.isInteger(p) && p > 0 && p < 65536;
  if (!ok(s3) || !ok(aws) || !ok(ibm) || !ok(cos) || rest.length) {
    console.error(`${USAGE}\n--ports takes four port numbers`);
    process.exit(2);
  }
  return { s3, aws, ibm, cos };
})();
const dir = resolve(args.dir);
const cloudsYaml = resolve(args['clouds-yaml'] ?? join(dir, '..', 'openstack', 'clouds.yaml'));
mkdirSync(dir, { recursive: true, mode: 0o700 });

const logStream = createWriteStream(join(dir, 'lab-cloud.log'), { flags: 'a' });
function log(message: string): void {
  logStream.write(`${new Date().toISOString()} ${message}\n`);
}

/** The lab's credentials, made on the first start and the same on every later one. */
function loadSecrets(): Secrets {
  const file = join(dir, 'secrets.json');
  if (existsSync(file)) {
    const kept = JSON.parse(readFileSync(file, 'utf8')) as Secrets;
    if (kept.ibmTokenSecret) return kept;
    // Written by an older lab: add the token secret once, keeping everything else.
    const upgraded = { ...kept, ibmTokenSecret: randomBytes(32).toString('base64') };
    writeFileSync(`${file}.tmp`, JSON.stringify(upgraded, null, 2), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
    return upgraded;
  }
  // AWS's shapes: AKIA + 16 base32 characters, a 40-character secret.
  const base32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const secrets: Secrets = {
    accessKeyId: `AKIA${[...randomBytes(16)].map((b) => base32[b & 31]).join('')}`,
    secretAccessKey: randomBytes(30).toString('base64'),
    ibmApiKey: randomBytes(33).toString('base64url'),
    ibmAccountId: randomBytes(16).toString('hex'),
    ibmTokenSecret: randomBytes(32).toString('base64'),
    resourceGroupIds: { Default: randomUUID().replaceAll('-', ''), [LAB_RESOURCE_GROUP]: randomUUID().replaceAll('-', '') },
  };
  writeFileSync(`${file}.tmp`, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return secrets;
}

const shellQuote = (v: string) => `'${v.replaceAll("'", `'\\''`)}'`;

function writeEnv(secrets: Secrets): string {
  const vars: [string, string][] = [
    ['AWS_ACCESS_KEY_ID', secrets.accessKeyId],
    ['AWS_SECRET_ACCESS_KEY', secrets.secretAccessKey],
    ['AWS_REGION', 'us-east-1'],
    // The AWS CLI (botocore) reads this name, not AWS_REGION.
    ['AWS_DEFAULT_REGION', 'us-east-1'],
    ['AWS_ENDPOINT_URL_S3', `http://${HOST}:${ports.s3}`],
    // EC2 and EBS too, so an SDK client without an endpoint override still lands on the fake,
    // never on AWS.
    ['AWS_ENDPOINT_URL_EC2', `http://${HOST}:${ports.aws}`],
    ['AWS_ENDPOINT_URL_EBS', `http://${HOST}:${ports.aws}`],
    ['AWS_EC2_METADATA_DISABLED', 'true'],
    ['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED', 'true'],
    ['IBMCLOUD_API_KEY', secrets.ibmApiKey],
    ['COS_HMAC_ACCESS_KEY_ID', secrets.accessKeyId],
    ['COS_HMAC_SECRET_ACCESS_KEY', secrets.secretAccessKey],
    ['OS_CLIENT_CONFIG_FILE', cloudsYaml],
  ];
  const text =
    '# The lab cloud services (scripts/lab.d/services/cloud.sh): source it, e.g. . "$(scripts/lab env)"\n' +
    `# S3 http://${HOST}:${ports.s3}  AWS EC2/EBS http://${HOST}:${ports.aws}  ` +
    `IBM IAM/Resource Manager/VPC http://${HOST}:${ports.ibm}\n` +
    vars.map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join('');
  const file = join(dir, 'env');
  writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return file;
}

/** One log line per request (PutSnapshotBlock successes summed up), flushed every 2 s. */
function logRequests(aws: AwsFake, ibm: IbmFake): NodeJS.Timeout {
  const timer = setInterval(() => {
    let blocks = 0;
    for (const r of aws.stats.requests.splice(0)) {
      if (r.action === 'PutSnapshotBlock' && r.status === 200) blocks++;
      else log(`aws ${r.service} ${r.region || '-'} ${r.action} ${r.status}${r.code ? ` ${r.code}` : ''}`);
    }
    if (blocks) log(`aws ebs PutSnapshotBlock x${blocks} 200`);
    for (const r of ibm.requests.splice(0)) log(`ibm ${r.method} ${r.path} ${r.status}`);
  }, 2000);
  timer.unref();
  return timer;
}

async function main(): Promise<void> {
  const secrets = loadSecrets();
  const credentials = { accessKeyId: secrets.accessKeyId, secretAccessKey: secrets.secretAccessKey };
  const started: { name: string; stop(): Promise<void> }[] = [];
  let stopping: Promise<void> | undefined;

  const stop = (signal: string) => {
    stopping ??= (async () => {
      log(`${signal}: stopping`);
      const deadline = setTimeout(() => {
        log(`servers did not close within ${STOP_TIMEOUT_MS} ms; exiting anyway`);
        process.exit(1);
      }, STOP_TIMEOUT_MS);
      // Reverse order: the fakes read from S3, so S3 goes last.
      for (const s of started.reverse()) {
        await s.stop().catch((err: unknown) => log(`stopping ${s.name}: ${String(err)}`));
      }
      clearTimeout(deadline);
      log('stopped');
      logStream.end(() => process.exit(0));
    })();
  };
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => stop(sig));

  const s3: S3Server = await startS3({
    dir: join(dir, 's3'),
    port: ports.s3,
    credentials,
    buckets: [LAB_BUCKETS.awsImports, LAB_BUCKETS.ibmCos],
  });
  started.push({ name: 's3', stop: () => s3.stop() });

  mkdirSync(join(dir, 'aws'), { recursive: true });
  const aws = await startAwsFake({
    port: ports.aws,
    regions: AWS_REGIONS,
    credentials,
    s3: s3ClientConfig(s3),
    dir: join(dir, 'aws'),
    statePath: join(dir, 'aws-state.json'),
    instanceHosts: resolve(import.meta.dirname, '../../scripts/lab.d/ec2-host'),
  });
  started.push({ name: 'aws', stop: () => aws.stop() });

  const ibm = await startIbmFake({
    port: ports.ibm,
    cos: { endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    cosDoor: { upstream: s3.endpoint, port: ports.cos },
    apiKeys: [secrets.ibmApiKey],
    tokenSecret: Buffer.from(secrets.ibmTokenSecret!, 'base64'),
    accountId: secrets.ibmAccountId,
    resourceGroups: [
      { name: 'Default', default: true, id: secrets.resourceGroupIds.Default },
      { name: LAB_RESOURCE_GROUP, id: secrets.resourceGroupIds[LAB_RESOURCE_GROUP] },
    ],
    statePath: join(dir, 'ibm-state.json'),
  });
  started.push({ name: 'ibm', stop: () => ibm.stop() });

  const timer = logRequests(aws, ibm);
  started.unshift({ name: 'request log', stop: async () => clearInterval(timer) });
  const envFile = writeEnv(secrets);
  log(
    `ready (pid ${process.pid}): S3 ${s3.endpoint} (buckets ${Object.values(LAB_BUCKETS).join(', ')}), ` +
      `AWS ${aws.endpoint} (${aws.images().length} images, ${aws.snapshots().length} snapshots), ` +
      `IBM ${ibm.url} (resource group ${LAB_RESOURCE_GROUP}, ${ibm.images().length} images), COS ${ibm.cosUrl}; env in ${envFile}`,
  );
}

main().catch((err: unknown) => {
  const message = (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
    ? `${String(err)}: another process holds a lab cloud port (ss -ltnp 'sport >= :19000 and sport <= :19003')`
    : String((err as Error).stack ?? err);
  log(`failed to start: ${message}`);
  console.error(`lab-cloud: failed to start: ${message}`);
  logStream.end(() => process.exit(1));
});
