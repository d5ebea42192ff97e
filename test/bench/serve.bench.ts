// Benchmark: `farm serve` under hostile traffic. A real `farm serve` process (bin/farm.js of this
// checkout, or of --repo DIR to measure another commit) takes COUNT concurrent SIZE-MiB
// unauthenticated POSTs per scenario, each scenario in a fresh process so its peak RSS (VmHWM)
// is its own. Reported: RSS at rest, peak RSS, bytes the process read (/proc/PID/io rchar) and
// what the clients got back. Target: peak RSS at most 64 MiB over rest, whatever the scenario.
//
//   node bin/tsnode.js test/bench/serve.bench.ts [--repo DIR] [--count 24] [--size-mib 24]

import { rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { flood, MiB, procStats, type FloodRequest } from '../support/flood.ts';
import { serveInventory, startServe } from '../support/serve.ts';

// Not strict: `npm run bench` hands every benchmark the options meant for the others.
const { values } = parseArgs({ strict: false, options: { repo: { type: 'string' }, count: { type: 'string', default: '24' }, 'size-mib': { type: 'string', default: '24' } } });
const COUNT = Number(values.count);
const SIZE = Number(values['size-mib']) * MiB;
const BIN = typeof values.repo === 'string' ? join(resolve(values.repo), 'bin', 'farm.js') : undefined;
const TARGET = 64 * MiB;

const forged = 'sha256=' + '0'.repeat(64);
const github = (chunked: boolean): FloodRequest => ({ path: '/hooks/github', size: SIZE, chunked, headers: { 'x-github-event': 'push', 'x-hub-signature-256': forged, 'x-github-delivery': 'flood' } });
const gitlab: FloodRequest = { path: '/hooks/gitlab', size: SIZE, headers: { 'x-gitlab-token': 'not-the-token', 'x-gitlab-event': 'Push Hook' } };
const times = (n: number, r: FloodRequest) => Array.from({ length: n }, () => r);

const SCENARIOS: Array<[string, FloodRequest[]]> = [
  ['github, forged signature, Content-Length', times(COUNT, github(false))],
  ['github, forged signature, chunked', times(COUNT, github(true))],
  ['gitlab, wrong token', times(COUNT, gitlab)],
  ['github + gitlab together', [...times(COUNT, github(false)), ...times(COUNT, gitlab)]],
];

export async function runServeBench(): Promise<boolean> {
  const inventory = await serveInventory(`  source: { watch: false }
  webhooks: { github_secret_env: BENCH_GH, gitlab_token_env: BENCH_GL }`);
  const env = { BENCH_GH: 'bench-github-secret', BENCH_GL: 'bench-gitlab-token' };
  const mib = (n: number) => `${(n / MiB).toFixed(0)} MiB`;
  console.log(`farm serve (${BIN ?? 'this checkout'}): ${COUNT} concurrent ${SIZE / MiB} MiB unauthenticated POSTs per hook`);
  console.log(['scenario'.padEnd(42), 'rest'.padStart(8), 'peak'.padStart(9), 'read'.padStart(10), 'seconds'.padStart(8), '  answers'].join(''));
  let pass = true;
  try {
    for (const [name, requests] of SCENARIOS) {
      const service = await startServe(inventory, env, BIN ? { bin: BIN } : {});
      try {
        await new Promise((r) => setTimeout(r, 1000)); // let start-up settle before the baseline
        const rest = await procStats(service.pid);
        const result = await flood(service.url, requests);
        const after = await procStats(service.pid);
        const answers = Object.entries(result.outcomes).map(([k, v]) => `${v}x ${k}`).join(', ');
        console.log([name.padEnd(42), mib(rest.rss).padStart(8), mib(after.peakRss).padStart(9), mib(after.readBytes - rest.readBytes).padStart(10), (result.ms / 1000).toFixed(1).padStart(8), `  ${answers}`].join(''));
        if (after.peakRss - rest.rss > TARGET) pass = false;
      } finally {
        await service.stop('SIGTERM', 30_000).catch(() => service.stop('SIGKILL'));
      }
    }
  } finally {
    await rm(dirname(inventory), { recursive: true, force: true });
  }
  console.log(`${pass ? 'PASS' : 'MISS'} peak RSS within ${mib(TARGET)} of rest in every scenario`);
  return pass;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = (await runServeBench()) ? 0 : 1;
