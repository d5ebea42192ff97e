// Azure page-blob upload on the lab's Azurite (the real Blob service, loopback TLS, OAuth tokens
// from the lab's Entra ID fake): the farm's sparse upload (only non-zero 512-byte ranges, Put Page
// requests in a pool) against @azure/storage-blob's uploadFile of the same file without sparse
// ranges (AzCopy, the peer tool, cannot be had here: it is not in Debian or npm). Same file, same
// account, one run; reported as a ratio of times, target: the farm at least as fast (>= 1).
//   node bin/tsnode.js test/bench/azure.bench.ts [--size-mib 1024] [--data-mib 192]

import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { DEFAULT_CONCURRENCY, containerClient, uploadSparse } from '../../uploaders/azure/blob.ts';
import { azureCredential } from '../../uploaders/azure/credential.ts';
import { planPages } from '../../uploaders/azure/pages.ts';
import { LAB_AZURE } from '../fakes/azure/lab.ts';
import { formatRows, type Row } from './aws.bench.ts';

const run = promisify(execFile);
const MIB = 1024 * 1024;

/** The lab's env (NODE_EXTRA_CA_CERTS must be there when node starts: re-run with it). */
function withLabEnv(): boolean {
  if (process.env.FARM_LAB_AZURE_BLOB_URL && process.env.NODE_EXTRA_CA_CERTS) return false;
  const lab = fileURLToPath(new URL('../../scripts/lab', import.meta.url));
  const file = spawnSync(lab, ['env'], { encoding: 'utf8' }).stdout.trim();
  const env: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^export ([A-Z0-9_]+)='(.*)'$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!.replaceAll(`'\\''`, "'");
  }
  if (!env.FARM_LAB_AZURE_BLOB_URL) throw new Error('the lab has no Azure part: run scripts/lab up');
  const tsnode = fileURLToPath(new URL('../../bin/tsnode.js', import.meta.url));
  const r = spawnSync(process.execPath, [tsnode, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, ...env } });
  process.exitCode = r.status ?? 1;
  return true;
}

/** A fixed VHD of `size` MiB holding `data` MiB of random data in 16 runs, the rest holes. */
async function makeVhd(dir: string, sizeMiB: number, dataMiB: number): Promise<{ path: string; size: number; data: number }> {
  const raw = join(dir, 'disk.raw');
  const fh = await open(raw, 'w');
  await fh.truncate(sizeMiB * MIB);
  const runs = 16;
  const per = Math.floor(dataMiB / runs) * MIB;
  for (let i = 0; i < runs; i++) await fh.write(randomBytes(per), 0, per, Math.floor((i * sizeMiB) / runs) * MIB);
  await fh.close();
  const path = join(dir, 'disk.vhd');
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=fixed,force_size=on', raw, path]);
  await rm(raw);
  return { path, size: (await stat(path)).size, data: runs * per };
}

export async function runAzureBench(sizeMiB: number, dataMiB: number): Promise<{ rows: Row[]; ratio: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-azure-bench-'));
  const credential = azureCredential(process.env);
  const container = containerClient({ endpoint: process.env.FARM_LAB_AZURE_BLOB_URL!, container: LAB_AZURE.container, credential });
  const tag = randomBytes(4).toString('hex');
  try {
    const vhd = await makeVhd(dir, sizeMiB, dataMiB);
    const rows: Row[] = [];

    const farmBlob = container.getPageBlobClient(`bench-farm-${tag}.vhd`);
    let t = process.hrtime.bigint();
    const plan = await planPages(vhd.path, vhd.size);
    const sent = await uploadSparse({
      blob: farmBlob, path: vhd.path, size: vhd.size, ranges: plan.ranges, metadata: {}, concurrency: DEFAULT_CONCURRENCY,
      signal: new AbortController().signal, onProgress: () => {},
    });
    const farmSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    await farmBlob.deleteIfExists();

    const sdkBlob = container.getBlockBlobClient(`bench-sdk-${tag}.vhd`);
    t = process.hrtime.bigint();
    await sdkBlob.uploadFile(vhd.path, { concurrency: DEFAULT_CONCURRENCY, blockSize: 4 * MIB });
    const sdkSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    await sdkBlob.deleteIfExists();

    const ratio = sdkSeconds / farmSeconds;
    const row = (tool: string, seconds: number, sentBytes: number, pass: boolean): Row => ({
      bench: 'azure page blob', tool, seconds, bytes: vhd.size, sentBytes, dataBytes: vhd.data, mibPerSecond: vhd.size / MIB / seconds, target: 'farm >= uploadFile', pass,
    });
    rows.push(row('farm sparse Put Page', farmSeconds, sent, ratio >= 1));
    rows.push(row('storage-blob uploadFile', sdkSeconds, vhd.size, true));
    return { rows, ratio };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && !withLabEnv()) {
  const { values } = parseArgs({ options: { 'size-mib': { type: 'string', default: '1024' }, 'data-mib': { type: 'string', default: '192' } }, strict: false });
  runAzureBench(Number(values['size-mib']), Number(values['data-mib'])).then(
    ({ rows, ratio }) => {
      console.log(formatRows(rows));
      const ok = ratio >= 1;
      console.log(`${ok ? 'PASS' : 'MISS'} azure: uploadFile time / farm time = ${ratio.toFixed(2)} (target >= 1)`);
      if (!ok) process.exitCode = 1;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
