// The lab's Azure in one long-running process, on fixed loopback ports, over TLS from the lab's
// own CA (bearer tokens travel over https only):
//   https://127.0.0.1:19010/farmlab   Azurite's Blob service (real), OAuth on, account farmlab
//   https://127.0.0.1:19011           fake Entra ID token endpoint + Resource Manager (compute)
// Secrets (client secret, account key, token-signing key) are made once and kept in
// <dir>/secrets.json; blobs in <dir>/azurite, images in <dir>/arm-state.json. Writes <dir>/env
// (0600) for `. "$(scripts/lab env)"`. Started by scripts/lab.d/services/azure.sh with
// NODE_EXTRA_CA_CERTS set to the CA, so its own Blob client trusts Azurite.
//
//   node bin/tsnode.js test/fakes/lab-azure.ts --dir .lab/azure --tls .lab/azure/tls

import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { blobProbe } from './azure/blob-probe.ts';
import { LAB_AZURE, labArmSeeds, labBlobUrl } from './azure/lab.ts';
import { startAzureFake } from './azure/server.ts';

interface Secrets {
  clientSecret: string;
  accountKey: string;
  tokenSecret: string;
}

const { values: args } = parseArgs({ options: { dir: { type: 'string' }, tls: { type: 'string' } }, strict: true });
if (!args.dir || !args.tls) {
  console.error('usage: lab-azure.ts --dir STATE_DIR --tls TLS_DIR (ca.crt, server.crt, server.key)');
  process.exit(2);
}
const dir = resolve(args.dir);
const tlsDir = resolve(args.tls);
mkdirSync(dir, { recursive: true, mode: 0o700 });
const logStream = createWriteStream(join(dir, 'lab-azure.log'), { flags: 'a' });
const log = (m: string) => logStream.write(`${new Date().toISOString()} ${m}\n`);

function loadSecrets(): Secrets {
  const file = join(dir, 'secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Secrets;
  const s: Secrets = { clientSecret: randomBytes(30).toString('base64url'), accountKey: randomBytes(64).toString('base64'), tokenSecret: randomBytes(32).toString('base64') };
  writeFileSync(`${file}.tmp`, JSON.stringify(s, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return s;
}

const q = (v: string) => `'${v.replaceAll("'", `'\\''`)}'`;

async function main(): Promise<void> {
  const secrets = loadSecrets();
  const ca = join(tlsDir, 'ca.crt');
  // Azurite reads its accounts from the environment when it starts.
  process.env.AZURITE_ACCOUNTS = `${LAB_AZURE.account}:${secrets.accountKey}`;
  const require = createRequire(import.meta.url);
  const BlobServer = require('azurite/dist/src/blob/BlobServer.js').default;
  const BlobConfiguration = require('azurite/dist/src/blob/BlobConfiguration.js').default;
  const store = join(dir, 'azurite');
  mkdirSync(store, { recursive: true });
  const config = new BlobConfiguration(
    LAB_AZURE.host,
    LAB_AZURE.ports.blob,
    5, // keep-alive seconds
    join(store, '__azurite_db_blob__.json'),
    join(store, '__azurite_db_blob_extent__.json'),
    [{ locationId: 'Default', locationPath: join(store, '__blobstorage__'), maxConcurrency: 10 }],
    false, // access log
    undefined,
    false, // debug log
    undefined,
    false, // loose: unsupported headers are errors, as in Azure
    false, // skipApiVersionCheck
    join(tlsDir, 'server.crt'),
    join(tlsDir, 'server.key'),
    '',
    'basic', // OAuth: bearer tokens checked for issuer and audience
    true, // disableProductStyleUrl: the account is the first path segment
  );
  const blob = new BlobServer(config);
  await blob.start();
  log(`azurite listening on ${labBlobUrl()}`);

  const account = { name: LAB_AZURE.account, key: secrets.accountKey, url: labBlobUrl(), ca: readFileSync(ca, 'utf8') };
  const service = new BlobServiceClient(labBlobUrl(), new StorageSharedKeyCredential(LAB_AZURE.account, secrets.accountKey));
  await service.getContainerClient(LAB_AZURE.container).createIfNotExists();

  const fake = await startAzureFake({
    tls: { key: readFileSync(join(tlsDir, 'server.key'), 'utf8'), cert: readFileSync(join(tlsDir, 'server.crt'), 'utf8') },
    ...labArmSeeds(),
    clients: { [LAB_AZURE.clientId]: secrets.clientSecret },
    probe: blobProbe(account),
    tokenSecret: Buffer.from(secrets.tokenSecret, 'base64'),
    port: LAB_AZURE.ports.arm,
    host: LAB_AZURE.host,
    statePath: join(dir, 'arm-state.json'),
  });
  log(`fake ARM and Entra ID on ${fake.url}`);
  const timer = setInterval(() => {
    for (const r of fake.requests.splice(0)) log(`arm ${r.method} ${r.path} ${r.status}${r.code ? ` ${r.code}` : ''}`);
  }, 2000);
  timer.unref();

  const vars: [string, string][] = [
    ['AZURE_TENANT_ID', LAB_AZURE.tenantId],
    ['AZURE_CLIENT_ID', LAB_AZURE.clientId],
    ['AZURE_CLIENT_SECRET', secrets.clientSecret],
    ['AZURE_AUTHORITY_HOST', fake.url],
    // Only the environment's service principal: the chain's managed-identity probe would reach
    // for 169.254.169.254, which is not the lab.
    ['AZURE_TOKEN_CREDENTIALS', 'EnvironmentCredential'],
    ['AZURE_SUBSCRIPTION_ID', LAB_AZURE.subscriptionId],
    ['AZURE_STORAGE_ACCOUNT', LAB_AZURE.account],
    ['AZURE_STORAGE_KEY', secrets.accountKey],
    ['FARM_LAB_AZURE_BLOB_URL', labBlobUrl()],
    ['FARM_LAB_AZURE_ARM_URL', fake.url],
    ['FARM_LAB_AZURE_CA', ca],
    // Node reads it at start: the farm's Azure SDK clients trust the lab CA.
    ['NODE_EXTRA_CA_CERTS', ca],
  ];
  const file = join(dir, 'env');
  writeFileSync(
    `${file}.tmp`,
    `# The lab's Azure (scripts/lab.d/services/azure.sh): Azurite ${labBlobUrl()}, ARM + Entra ID ${fake.url}\n` +
      vars.map(([k, v]) => `export ${k}=${q(v)}\n`).join(''),
    { mode: 0o600 },
  );
  renameSync(`${file}.tmp`, file);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log('stopping');
    await fake.stop();
    await blob.close();
    logStream.end(() => process.exit(0));
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

main().catch((err: unknown) => {
  log(`failed: ${(err as Error).stack ?? String(err)}`);
  console.error(err);
  process.exit(1);
});
