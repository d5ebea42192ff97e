import { resolve } from 'node:path';
import { workerSchema } from '../../src/inventory/schema.ts';
import { connectWorker } from '../../workers/ssh/session.ts';
import { fetchFile } from '../../workers/fetch/fetch.ts';
const t = await connectWorker(workerSchema.parse({ name: 'lab-x86_64', host: '10.231.0.11', port: 22, user: 'root', arch: 'x86_64', identity_file: resolve('.lab/ssh/id_ed25519'), known_hosts: resolve('.lab/ssh/known_hosts') }), { bulkTransfer: process.argv[2] as 'auto' });
let bad = 0;
for (let round = 0; round < 5; round++) {
  const r = await Promise.allSettled(['fs.raw', 'fs2.raw', 'fs.raw', 'fs2.raw'].map((f, i) => fetchFile(t, `/var/lib/farm/prof/${f}`, `/tmp/exp/conc-${i}`)));
  for (const x of r) if (x.status === 'rejected') { bad++; console.log(String(x.reason).slice(0, 200)); }
}
console.log('failures', bad);
await t.close();
