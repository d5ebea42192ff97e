// Benchmark: the libvirt uploader's sparse upload to the lab's x86_64 hypervisor.
// A 4 GiB raw holding 1 GiB of random data in 64 extents spread over the disk; bytes on the wire
// are counted on the hypervisor's own interface (rx_bytes of eth0 in its namespace) around the
// upload, so they include SSH and libvirt RPC framing. Target: wire <= 1.1 x data.
//
//   node bin/tsnode.js test/bench/libvirt.bench.ts      (prints a table and PASS/MISS lines)

import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { libvirtTargetSchema } from '../../uploaders/libvirt/schema.ts';
import { createLibvirtUploader } from '../../uploaders/libvirt/index.ts';
import type { UploadProgress } from '../../uploaders/uploader.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import { allocatedBytes } from '../support/disk.ts';
import { ensureHypervisors, hypervisorRxBytes, poolFile, removeVolume } from '../support/libvirt.ts';

const MiB = 1 << 20;
const GiB = 1 << 30;

export interface LibvirtBenchResult {
  apparentBytes: number;
  dataBytes: number;
  wireBytes: number;
  /** wire / data */
  ratio: number;
  seconds: number;
  /** data MiB per second */
  dataMiBps: number;
  /** allocated bytes of the volume's file on the hypervisor */
  volumeAllocated: number;
  progressReports: number;
  pass: boolean;
}

export async function runLibvirtBench(opts: { apparent?: number; data?: number; extents?: number } = {}): Promise<LibvirtBenchResult> {
  const apparent = opts.apparent ?? 4 * GiB;
  const data = opts.data ?? 1 * GiB;
  const extents = opts.extents ?? 64;
  const hvs = await ensureHypervisors();
  const hv = hvs.find((h) => h.arch === 'x86_64')!;
  const dir = await mkdtemp(join(tmpdir(), 'farm-libvirt-bench-'));
  const file = join(dir, 'disk.raw');
  const name = `farm-bench-${randomBytes(3).toString('hex')}`;
  try {
    // Extents of random (incompressible) data, evenly spread, holes between them.
    const fh = await open(file, 'w');
    const extent = Math.floor(data / extents);
    const stride = Math.floor(apparent / extents);
    const chunk = randomBytes(8 * MiB);
    try {
      await fh.truncate(apparent);
      for (let i = 0; i < extents; i++) {
        for (let off = 0; off < extent; off += chunk.length) {
          const n = Math.min(chunk.length, extent - off);
          chunk[0] = i; // different content per extent
          await fh.write(chunk, 0, n, i * stride + off);
        }
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    const dataBytes = await allocatedBytes(file);
    const { size } = await stat(file);
    const artifact: Artifact = {
      buildId: 'bench',
      arch: 'x86_64',
      type: 'raw',
      imageName: name,
      disk: { path: file, name: 'disk.raw', size, sha256: '', format: 'raw' },
      extra: [],
      worker: 'lab',
      builtAt: new Date().toISOString(),
    };
    const target = libvirtTargetSchema.parse({
      kind: 'libvirt',
      image_type: 'raw',
      hypervisors: [{ uri: hv.uri, arch: 'x86_64', identity_file: hv.identityFile, known_hosts: hv.knownHosts }],
    });
    const progress: UploadProgress[] = [];
    const rx0 = await hypervisorRxBytes('x86_64');
    const t0 = performance.now();
    await createLibvirtUploader(target).upload(artifact, name, {
      signal: new AbortController().signal,
      log: () => {},
      onProgress: (p) => progress.push(p),
      tags: {},
    });
    const seconds = (performance.now() - t0) / 1000;
    const wireBytes = (await hypervisorRxBytes('x86_64')) - rx0;
    const volumeAllocated = await allocatedBytes(poolFile('x86_64', name));
    const ratio = wireBytes / dataBytes;
    return {
      apparentBytes: size,
      dataBytes,
      wireBytes,
      ratio,
      seconds,
      dataMiBps: dataBytes / MiB / seconds,
      volumeAllocated,
      progressReports: progress.length,
      pass: ratio <= 1.1,
    };
  } finally {
    await removeVolume('x86_64', name).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await runLibvirtBench();
  const g = (n: number) => `${(n / GiB).toFixed(3)} GiB`;
  console.log(`apparent ${g(r.apparentBytes)}, data ${g(r.dataBytes)}, wire ${g(r.wireBytes)}, volume allocated ${g(r.volumeAllocated)}`);
  console.log(`time ${r.seconds.toFixed(1)} s, ${r.dataMiBps.toFixed(0)} MiB/s of data, ${r.progressReports} progress reports`);
  console.log(`${r.pass ? 'PASS' : 'MISS'} wire/data ${r.ratio.toFixed(4)} (target <= 1.1)`);
  process.exitCode = r.pass ? 0 : 1;
}
