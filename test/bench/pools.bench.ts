// Allocation overhead per pool provider on the lab: seconds from the request to SSH-ready (the
// farm's own connection authenticated, host key verified) and from the end to the VM gone.
//   resalloc  the lab's stand-in (scripts/lab.d/resalloc): a fresh namespace host per ticket
//   command   the same stand-in behind the `command` provider's two commands
// Options: --repeat N (default 3). Prints medians; MISS when SSH-ready takes over 60 s.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandProvider, ResallocProvider } from '../../workers/pools/resalloc.ts';
import type { PoolProvider } from '../../workers/pools/types.ts';
import { connectWorker } from '../../workers/ssh/session.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const LAB_DIR = process.env.FARM_LAB_DIR ?? join(REPO, '.lab');
process.env.FARM_LAB_DIR = LAB_DIR;
const RESALLOC = join(REPO, 'scripts', 'lab.d', 'resalloc');
const i = process.argv.indexOf('--repeat');
const repeat = i > 0 ? Number(process.argv[i + 1]) : 3;
const reach = { user: 'root', port: 22, known_hosts: join(LAB_DIR, 'ssh', 'known_hosts'), identity_file: join(LAB_DIR, 'ssh', 'id_ed25519'), pass_env: ['FARM_LAB_DIR'] };

const providers: PoolProvider[] = [
  new ResallocProvider('bench-resalloc', { ...reach, command: [RESALLOC], tags: ['arch_s390x_native'], wait_timeout_s: 120 }),
  new CommandProvider('bench-command', {
    ...reach,
    allocate: ['bash', '-c', `id=$("${RESALLOC}" ticket --tag arch_aarch64) && "${RESALLOC}" ticket-wait "$id" && echo "id: $id"`],
    release: ['bash', '-c', `"${RESALLOC}" ticket-close "$1"`, 'release'],
    timeout_s: 120,
  }),
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
let missed = 0;
console.log('PROVIDER   REQUEST->SSH-READY (s)  END->GONE (s)  RUNS');
for (const p of providers) {
  const ready: number[] = [];
  const gone: number[] = [];
  for (let n = 0; n < repeat; n++) {
    const t0 = Date.now();
    const a = await p.allocate(new AbortController().signal);
    try {
      const t = await connectWorker({ name: p.pool, ...a.endpoint, arch: 'x86_64', podman_socket: '/run/podman/podman.sock', storage: '/', output_dir: '/', min_free_gib: { storage: 0, output: 0 } });
      await t.exec(['true']);
      ready.push((Date.now() - t0) / 1000);
      await t.close();
    } finally {
      const t1 = Date.now();
      await p.release(a);
      gone.push((Date.now() - t1) / 1000);
    }
  }
  const r = median(ready);
  console.log(`${p.provider.padEnd(10)} ${r.toFixed(1).padStart(22)}  ${median(gone).toFixed(1).padStart(13)}  ${repeat}`);
  if (r > 60) missed++;
}
console.log(missed ? 'MISS: a provider took over 60 s to SSH-ready' : 'PASS: every provider SSH-ready within 60 s');
process.exitCode = missed ? 1 : 0;
