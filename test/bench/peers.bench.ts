// The farm's uploaders against the standard tools, side by side in one run, on the same disk and
// the same link, each as the ratio peer time / farm time (> 1: the farm is faster):
//   glance   farm's OpenStack uploader    vs `openstack image create --file`   (lab Keystone + Glance)
//   libvirt  farm's libvirt uploader      vs `virsh vol-upload --sparse` alone  (lab hypervisor, qemu+ssh)
//   libvirt-create  the same               vs `virsh vol-create-as` + `vol-upload --sparse`
//   cos      farm's IBM COS upload        vs `aws s3 cp` to the COS door       (lab COS door, HMAC)
// The disk is made once: a bootc-shaped raw (GPT, ESP, /boot, root; test/support/bench-disk.ts).
// Each pair of turns alternates who goes first; the median ratio must be >= 1.
//
//   node bin/tsnode.js test/bench/peers.bench.ts [--only glance,libvirt,libvirt-create,cos] [--repeat 3]
//        [--warmup 1] [--disk-mib 768] [--root-data-mib 160]

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { describeDisk, makeBootcDisk, type BenchDisk } from '../support/bench-disk.ts';
import { PEER_ROWS_ENV, formatPeerTable, meetsTarget, median, racePair, recordPeerRows, type PeerRow } from '../support/bench-pair.ts';
import { ensureLab } from '../support/lab.ts';
import { cosPeer } from './peers/cos.ts';
import { glancePeer } from './peers/glance.ts';
import { libvirtPeer } from './peers/libvirt.ts';
import type { PeerSetup } from './peers/peer.ts';

const PEERS: Record<string, (disk: BenchDisk) => Promise<PeerSetup>> = {
  glance: glancePeer,
  libvirt: libvirtPeer,
  // Context for libvirt's ratio: the peer also makes the volume, over the link.
  'libvirt-create': (disk) => libvirtPeer(disk, { withCreate: true }),
  cos: cosPeer,
};

export async function runPeerBench(opts: { only: string[]; repeat: number; warmup: number; diskMiB: number; rootDataMiB: number }): Promise<PeerRow[]> {
  await ensureLab();
  const dir = await mkdtemp(join(tmpdir(), 'farm-peers-bench-'));
  try {
    const disk = await makeBootcDisk(dir, { sizeMiB: opts.diskMiB, rootDataMiB: opts.rootDataMiB });
    const input = describeDisk(disk);
    console.log(`disk: ${input}`);
    const rows: PeerRow[] = [];
    for (const name of opts.only) {
      const setup = await PEERS[name]!(disk);
      try {
        console.log(`${setup.bench}: ${setup.farm.label} vs ${setup.peer.label}`);
        const result = await racePair(setup.farm, setup.peer, { repeat: opts.repeat, warmup: opts.warmup, log: (l) => console.log(l) });
        const { farm, peer, close: _close, ...facts } = setup;
        rows.push({ ...facts, input, farm: farm.label, peer: peer.label, result });
      } finally {
        await setup.close();
      }
    }
    return rows;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: {
      only: { type: 'string', default: Object.keys(PEERS).join(',') },
      repeat: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      'disk-mib': { type: 'string', default: '768' },
      'root-data-mib': { type: 'string', default: '160' },
    },
    // all.bench.ts passes every option after the names to every benchmark.
    strict: false,
  });
  const only = String(values.only).split(',').filter((n) => n !== '');
  const unknown = only.filter((n) => !(n in PEERS));
  if (unknown.length) {
    console.error(`unknown peer(s) ${unknown.join(', ')}; known: ${Object.keys(PEERS).join(', ')}`);
    process.exit(2);
  }
  const t0 = performance.now();
  const rows = await runPeerBench({
    only,
    repeat: Math.max(1, Number(values.repeat)),
    warmup: Math.max(0, Number(values.warmup)),
    diskMiB: Number(values['disk-mib']),
    rootDataMiB: Number(values['root-data-mib']),
  });
  recordPeerRows(rows);
  // Under `npm run bench` the rows are in the one peer table at the end.
  if (!process.env[PEER_ROWS_ENV]) console.log(`\n${formatPeerTable(rows)}\n`);
  for (const r of rows) {
    console.log(`${meetsTarget(r) ? 'PASS' : 'MISS'} ${r.bench}: ratio peer/farm ${median(r.result.ratios).toFixed(2)} (target >= 1)`);
  }
  console.log(`peers bench took ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  process.exitCode = rows.every(meetsTarget) ? 0 : 1;
}
