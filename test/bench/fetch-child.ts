// One farm fetch in its own process, so the benchmark can report the fetch's own peak RSS.
// Input: one JSON argument. Output: one JSON line on stdout.

import { workerSchema } from '../../src/inventory/schema.ts';
import { fetchFile, type FetchMethod } from '../../workers/fetch/fetch.ts';
import type { RemoteHasher } from '../../workers/fetch/checksum.ts';
import { connectWorker } from '../../workers/ssh/session.ts';
import type { CipherAlgorithm } from 'ssh2';

export interface ChildInput {
  worker: Record<string, unknown>;
  remotePath: string;
  localPath: string;
  ciphers?: CipherAlgorithm[];
  hasher?: RemoteHasher;
  method?: FetchMethod;
  bulkTransfer?: 'auto' | 'openssh' | 'ssh2';
}

export interface ChildOutput {
  /** Connect + fetch (what an scp run also pays for). */
  seconds: number;
  fetchSeconds: number;
  size: number;
  sha256: string;
  bytesReceived: number;
  cipher: string;
  /** Peak resident set size of this process, bytes. */
  maxRss: number;
  cpuUser: number;
  cpuSystem: number;
}

const input = JSON.parse(process.argv[2] ?? '{}') as ChildInput;
const worker = workerSchema.parse(input.worker);
const started = performance.now();
const t = await connectWorker(worker, {
  ...(input.ciphers ? { ciphers: input.ciphers } : {}),
  ...(input.bulkTransfer ? { bulkTransfer: input.bulkTransfer } : {}),
});
try {
  const r = await fetchFile(t, input.remotePath, input.localPath, {
    ...(input.hasher ? { hasher: input.hasher } : {}),
    ...(input.method ? { method: input.method } : {}),
    ...(process.env.FARM_TRACE ? { progressIntervalMs: 100, onProgress: (p) => console.error(`${((performance.now() - started) / 1000).toFixed(2)} s: ${(p.received / 2 ** 20).toFixed(0)} MiB`) } : {}),
  });
  const usage = process.resourceUsage();
  const out: ChildOutput = {
    seconds: (performance.now() - started) / 1000,
    fetchSeconds: r.seconds,
    size: r.size,
    sha256: r.sha256,
    bytesReceived: r.bytesReceived,
    cipher: t.bulkTransfer === 'openssh' ? 'openssh' : t.negotiated.cipher,
    maxRss: usage.maxRSS * 1024,
    cpuUser: usage.userCPUTime / 1e6,
    cpuSystem: usage.systemCPUTime / 1e6,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
} finally {
  await t.close();
}
