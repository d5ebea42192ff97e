// `npm run bench`: every benchmark, one after another on the same machine and links, each against
// the standard tool it replaces. Each prints its own table and PASS/MISS lines.
//   fetch    farm's sparse verified fetch vs scp vs ssh "gzip < f" | gzip -d   (lab worker)
//   aws      EBS direct bytes sent vs data; S3 multipart vs `aws s3 cp`         (fake EC2/EBS, s3rver)
//   libvirt  sparse vol-upload bytes on the wire vs data                       (lab hypervisor)
//   azure    sparse page-blob upload vs storage-blob's uploadFile, time ratio   (lab Azurite)
//   build    farm build --arch all with every target vs the slowest arch alone  (whole lab)
//   serve    farm serve's peak RSS under 24 x 24 MiB unauthenticated POSTs per webhook (no lab)
//   pools    pool VM overhead: request -> SSH-ready, end -> gone, per provider (lab resalloc)
//   startup  farm --version and farm --help vs node -e 0                        (no lab)
//   peers    Glance, libvirt and COS uploads vs openstack image create, virsh vol-upload --sparse,
//            aws s3 cp: ratios peer time / farm time on one bootc-shaped disk   (lab)
// Run one with: npm run bench -- fetch [its options, e.g. --repeat 5]
// A benchmark is test/bench/<name>.bench.ts run as a script, added by its name in BENCHES; one that
// compares with a peer tool passes its rows to recordPeerRows (test/support/bench-pair.ts) and
// they are in the peer table printed at the end.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PEER_ROWS_ENV, formatPeerTable, readPeerRows } from '../support/bench-pair.ts';

const BENCHES = [
  'startup',
  'fetch',
  'aws',
  'libvirt',
  'peers',
  'azure',
  'build',
  'serve',
  'pools',
] as const;
/** The ones that run without the lab. */
const NO_LAB: readonly string[] = ['startup', 'serve'];
const selected = process.argv.slice(2).filter((a) => (BENCHES as readonly string[]).includes(a));
// Options after the names go to the selected benchmarks: npm run bench -- fetch --repeat 5
const passed = process.argv.slice(2).filter((a) => !(BENCHES as readonly string[]).includes(a));
const tsnode = fileURLToPath(new URL('../../bin/tsnode.js', import.meta.url));

const chosen: readonly string[] = selected.length ? selected : BENCHES;

if (chosen.some((name) => !NO_LAB.includes(name))) {
  const lab = spawnSync(fileURLToPath(new URL('../../scripts/lab', import.meta.url)), ['up'], { stdio: 'inherit' });
  if (lab.status !== 0) process.exit(lab.status ?? 1);
}

const rowsDir = mkdtempSync(join(tmpdir(), 'farm-bench-rows-'));
const rowsFile = join(rowsDir, 'peer-rows.jsonl');
let failed = 0;
for (const name of chosen) {
  console.log(`\n===== ${name} =====`);
  const file = fileURLToPath(new URL(`./${name}.bench.ts`, import.meta.url));
  const r = spawnSync(process.execPath, [tsnode, file, ...passed], { stdio: 'inherit', env: { ...process.env, [PEER_ROWS_ENV]: rowsFile } });
  if (r.status !== 0) failed++;
}
const peerRows = readPeerRows(rowsFile);
rmSync(rowsDir, { recursive: true, force: true });
if (peerRows.length) console.log(`\n===== the farm against peer tools (ratio = peer time / farm time) =====\n${formatPeerTable(peerRows)}`);
console.log(failed ? `\n${failed} benchmark(s) missed a target or failed` : '\nall benchmarks met their targets');
process.exitCode = failed ? 1 : 0;
