// Fetch benchmark: farm's verified sparse fetch against scp and the field's `ssh "gzip < f" | gzip -d`.
//
//   npm run bench -- fetch [--host 10.231.0.11] [--port 22] [--user root] [--key .lab/ssh/id_ed25519]
//                    [--known-hosts .lab/ssh/known_hosts] [--sparse-gib 4] [--data-gib 1]
//                    [--dense-gib 1] [--methods farm,farm-ssh2,scp,gzip] [--repeat 3] [--no-verify]
//
// Makes on the worker a sparse raw (random, incompressible data in several regions) and a dense
// random file, warms the worker's page cache (caches cannot be dropped here), fetches each file
// with each method one after another, and prints wall time, throughput, speedup over scp and the
// farm fetch's peak RSS (measured in its own process). Everything is removed at the end.
// Methods: farm (the default fetch: sparse map, data regions by dd through OpenSSH's client, the
// worker's sha256 checked), farm-ssh2 (the same over the ssh2 connection), farm-tar (tar's whole
// stream), scp (OpenSSH defaults), gzip (ssh host "gzip < f" | gzip -d; first repetition only,
// it takes minutes). Targets are judged on the median of the repetitions; the best is shown too.

import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { workerSchema, type Worker } from '../../src/inventory/schema.ts';
import { quote } from '../../src/core/quote.ts';
import { connectWorker } from '../../workers/ssh/session.ts';
import type { ChildInput, ChildOutput } from './fetch-child.ts';
import type { FetchMethod } from '../../workers/fetch/fetch.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const REGIONS = 8; // data regions in the sparse file

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '10.231.0.11' },
    port: { type: 'string', default: '22' },
    user: { type: 'string', default: 'root' },
    key: { type: 'string', default: '.lab/ssh/id_ed25519' },
    'known-hosts': { type: 'string', default: '.lab/ssh/known_hosts' },
    'remote-dir': { type: 'string', default: '/var/lib/farm' },
    'sparse-gib': { type: 'string', default: '4' },
    'data-gib': { type: 'string', default: '1' },
    'dense-gib': { type: 'string', default: '1' },
    methods: { type: 'string', default: 'farm,farm-ssh2,scp,gzip' },
    repeat: { type: 'string', default: '3' },
    hasher: { type: 'string', default: 'auto' },
    cipher: { type: 'string' },
    'no-verify': { type: 'boolean', default: false },
  },
});

const worker: Worker = workerSchema.parse({
  name: args.host === '10.231.0.11' ? 'lab-x86_64' : 'bench',
  host: args.host,
  port: Number(args.port),
  user: args.user,
  arch: 'x86_64',
  identity_file: resolve(args.key!),
  known_hosts: resolve(args['known-hosts']!),
});
const methods = args.methods!.split(',') as Array<'farm' | 'farm-ssh2' | 'farm-tar' | 'scp' | 'gzip'>;
const sparseSize = Number(args['sparse-gib']) * GiB;
const dataSize = Number(args['data-gib']) * GiB;
const denseSize = Number(args['dense-gib']) * GiB;
const repeat = Math.max(1, Number(args.repeat));

const sshOpts = [
  '-i', worker.identity_file!,
  '-o', `UserKnownHostsFile=${worker.known_hosts}`,
  '-o', 'StrictHostKeyChecking=yes',
  '-o', 'BatchMode=yes',
  '-o', 'IdentitiesOnly=yes',
];

function run(cmd: string, argv: string[]): Promise<{ stdout: string; seconds: number }> {
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    execFile(cmd, argv, { maxBuffer: 16 * MiB }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${err.message}\n${stderr}`));
      else resolvePromise({ stdout, seconds: (performance.now() - started) / 1000 });
    });
  });
}

async function farm(remotePath: string, localPath: string, method: FetchMethod, bulkTransfer: 'auto' | 'ssh2'): Promise<ChildOutput & { wall: number }> {
  const input: ChildInput = {
    worker: { ...worker },
    remotePath,
    localPath,
    method,
    bulkTransfer,
    ...(args.hasher !== 'auto' ? { hasher: args.hasher as ChildInput['hasher'] } : {}),
    ...(args.cipher ? { ciphers: [args.cipher as NonNullable<ChildInput['ciphers']>[number]] } : {}),
  };
  const started = performance.now();
  const child = spawn(process.execPath, ['bin/tsnode.js', 'test/bench/fetch-child.ts', JSON.stringify(input)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`farm fetch child exited with ${code}`);
  return { ...(JSON.parse(out) as ChildOutput), wall: (performance.now() - started) / 1000 };
}

async function scp(remotePath: string, localPath: string): Promise<number> {
  return (await run('scp', ['-q', ...sshOpts, '-P', String(worker.port), `${worker.user}@${worker.host}:${remotePath}`, localPath])).seconds;
}

async function gzipPipe(remotePath: string, localPath: string): Promise<number> {
  // ssh host "gzip < f" | gzip -d > local, exactly as the field runs it.
  const script = 'ssh "$@" | gzip -d > "$0"';
  return (await run('sh', ['-c', script, localPath, ...sshOpts, '-p', String(worker.port), `${worker.user}@${worker.host}`, `gzip < ${quote(remotePath)}`])).seconds;
}

async function localSha256(path: string): Promise<string> {
  return (await run('openssl', ['dgst', '-sha256', '-r', path])).stdout.slice(0, 64);
}

interface Row {
  rep: number;
  file: string;
  method: string;
  seconds: number;
  size: number;
  sent?: number;
  rss?: number;
  note?: string;
}

function table(rows: Row[]): string {
  const scpTime = new Map(rows.filter((r) => r.method === 'scp').map((r) => [`${r.file}#${r.rep}`, r.seconds]));
  const head = ['file', 'method', 'seconds', 'MB/s', 'vs scp', 'peak RSS', 'sent', 'note'];
  const body = rows.map((r) => {
    const s = scpTime.get(`${r.file}#${r.rep}`);
    return [
      r.file,
      r.method,
      r.seconds.toFixed(2),
      (r.size / 1e6 / r.seconds).toFixed(0),
      s ? `${(s / r.seconds).toFixed(2)}x` : '-',
      r.rss ? `${(r.rss / MiB).toFixed(0)} MiB` : '-',
      r.sent !== undefined ? `${(r.sent / MiB).toFixed(0)} MiB` : '-',
      r.note ?? '',
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

const t = await connectWorker(worker);
const remoteDir = (await t.exec(['mktemp', '-d', `${args['remote-dir']}/farm-bench-XXXXXX`])).stdout.trim();
const localDir = mkdtempSync(join(tmpdir(), 'farm-bench-'));
let failed = false;
try {
  console.log(`worker ${worker.name} ${worker.host}:${worker.port}, remote ${remoteDir}, local ${localDir}`);
  const sparse = `${remoteDir}/disk.raw`;
  const dense = `${remoteDir}/dense.bin`;
  // Sparse: REGIONS regions of random data spread over the file, the rest holes.
  const regionMiB = Math.floor(dataSize / REGIONS / MiB);
  const strideMiB = Math.floor(sparseSize / REGIONS / MiB);
  await t.exec(['truncate', '-s', String(sparseSize), sparse]);
  for (let i = 0; i < REGIONS; i++) {
    const seek = i * strideMiB + Math.floor((strideMiB - regionMiB) / 2);
    await t.exec(['dd', 'if=/dev/urandom', `of=${sparse}`, 'bs=1M', `seek=${seek}`, `count=${regionMiB}`, 'conv=notrunc', 'status=none']);
  }
  await t.exec(['dd', 'if=/dev/urandom', `of=${dense}`, 'bs=1M', `count=${denseSize / MiB}`, 'status=none']);
  const du = (await t.exec(['du', '-B1', '--', sparse])).stdout.split(/\s/)[0];
  console.log(`made ${sparse} (${sparseSize / GiB} GiB, ${(Number(du) / MiB).toFixed(0)} MiB allocated) and ${dense} (${denseSize / GiB} GiB)`);
  // Warm-up: the worker's page cache holds both files for every method alike.
  await t.exec(['sh', '-c', 'cat -- "$@" > /dev/null', 'sh', sparse, dense]);
  const expected = new Map<string, string>();
  for (const f of [sparse, dense]) {
    expected.set(f, (await t.exec(['openssl', 'dgst', '-sha256', '-r', '--', f])).stdout.slice(0, 64));
  }

  const rows: Row[] = [];
  for (const [file, size] of [[sparse, sparseSize], [dense, denseSize]] as const) {
    const label = file === sparse ? `sparse ${sparseSize / GiB} GiB (${dataSize / GiB} GiB data)` : `dense ${denseSize / GiB} GiB`;
    for (let rep = 0; rep < repeat; rep++) {
      // Each repetition starts with a different method, so none always runs first.
      const order = methods.map((_, i) => methods[(i + rep) % methods.length]!);
      for (const m of order) {
        if (m === 'gzip' && rep > 0) continue;
        const out = join(localDir, `${m}.out`);
        rmSync(out, { force: true });
        let row: Row;
        if (m === 'farm' || m === 'farm-ssh2' || m === 'farm-tar') {
          const r = await farm(file, out, m === 'farm-tar' ? 'tar' : 'ranges', m === 'farm-ssh2' ? 'ssh2' : 'auto');
          row = { rep, file: label, method: m, seconds: r.seconds, size, sent: r.bytesReceived, rss: r.maxRss, note: `${r.cipher}, cpu ${r.cpuUser.toFixed(1)}u+${r.cpuSystem.toFixed(1)}s` };
        } else if (m === 'scp') {
          row = { rep, file: label, method: 'scp', seconds: await scp(file, out), size };
        } else {
          row = { rep, file: label, method: 'ssh|gzip', seconds: await gzipPipe(file, out), size };
        }
        const st = statSync(out);
        row.note = `${row.note ? `${row.note}, ` : ''}${(st.blocks * 512 / MiB).toFixed(0)} MiB on disk`;
        if (!args['no-verify']) {
          const got = await localSha256(out);
          if (got !== expected.get(file)) {
            row.note += ', SHA256 MISMATCH';
            failed = true;
          }
        }
        rows.push(row);
        console.log(`${label} ${row.method}: ${row.seconds.toFixed(2)} s`);
        // Flush this output before the next method runs, so it does not pay for this one's writeback.
        await run('sync', ['--', out]);
        rmSync(out, { force: true });
      }
    }
  }
  console.log(`\n${table(rows)}\n`);

  // Targets, on the median of the repetitions (this machine's timings wander by ±20%).
  const times = (file: string, method: string) => rows.filter((r) => r.file.startsWith(file) && r.method === method).map((r) => r.seconds);
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  console.log('median (best) seconds of each method:');
  for (const file of ['sparse', 'dense']) {
    const cells = [...new Set(rows.filter((r) => r.file.startsWith(file)).map((r) => r.method))].map((m) => {
      const xs = times(file, m);
      return `${m} ${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)})`;
    });
    console.log(`  ${file}: ${cells.join(', ')}`);
  }
  const checks: Array<[string, boolean]> = [];
  if (methods.includes('farm') && methods.includes('scp')) {
    const ratio = (file: string) => median(times(file, 'scp')) / median(times(file, 'farm'));
    const best = (file: string) => Math.min(...times(file, 'scp')) / Math.min(...times(file, 'farm'));
    const s = ratio('sparse');
    const d = ratio('dense');
    checks.push([`farm >= 3x scp on the sparse file: ${s.toFixed(2)}x (best of each: ${best('sparse').toFixed(2)}x)`, s >= 3]);
    checks.push([`farm no slower than scp on the dense file: ${d.toFixed(2)}x (best of each: ${best('dense').toFixed(2)}x)`, d >= 1]);
  }
  const rss = Math.max(0, ...rows.filter((r) => r.rss).map((r) => r.rss!));
  if (rss) checks.push([`farm peak RSS < 200 MiB: ${(rss / MiB).toFixed(0)} MiB`, rss < 200 * MiB]);
  for (const [text, ok] of checks) {
    console.log(`${ok ? 'PASS' : 'MISS'} ${text}`);
    if (!ok) failed = true;
  }
} finally {
  // The setup connection may have dropped during a long run; clean up over a fresh one then.
  const cleaner = t.closed ? await connectWorker(worker).catch(() => undefined) : t;
  await cleaner?.exec(['rm', '-rf', '--', remoteDir]).catch((err: unknown) => console.error(`cleanup on the worker failed: ${String(err)}`));
  if (!cleaner) console.error(`cleanup on the worker failed: cannot reconnect; remove ${remoteDir} by hand`);
  await cleaner?.close();
  await t.close();
  rmSync(localDir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
