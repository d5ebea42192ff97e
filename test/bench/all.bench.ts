// `npm run bench`: every benchmark, one after another on the same machine and links, each against
// the standard tool it replaces. Each prints its own table and PASS/MISS lines.
//   fetch    farm's sparse verified fetch vs scp vs ssh "gzip < f" | gzip -d   (lab worker)
//   aws      EBS direct bytes sent vs data; S3 multipart vs `aws s3 cp`         (fake EC2/EBS, s3rver)
//   libvirt  sparse vol-upload bytes on the wire vs data                       (lab hypervisor)
//   azure    sparse page-blob upload vs storage-blob's uploadFile, time ratio   (lab Azurite)
//   build    farm build --arch all with every target vs the slowest arch alone  (whole lab)
//   serve    farm serve's peak RSS under 24 x 24 MiB unauthenticated POSTs per webhook (no lab)
//   startup  farm --version and farm --help vs node -e 0                        (no lab)
// Run one with: npm run bench -- fetch [its options, e.g. --repeat 5]

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCHES = ['startup', 'fetch', 'aws', 'libvirt', 'azure', 'build', 'serve'] as const;
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

let failed = 0;
for (const name of chosen) {
  console.log(`\n===== ${name} =====`);
  const file = fileURLToPath(new URL(`./${name}.bench.ts`, import.meta.url));
  const r = spawnSync(process.execPath, [tsnode, file, ...passed], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
console.log(failed ? `\n${failed} benchmark(s) missed a target or failed` : '\nall benchmarks met their targets');
process.exitCode = failed ? 1 : 0;
