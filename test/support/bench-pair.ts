// The farm against a peer tool, in one run on the same input and link: the two take turns
// (farm, peer, then peer, farm, ...) so drift of this shared machine's speed falls on both, and
// each pair gives its own ratio peer time / farm time (> 1: the farm is faster). The median of the
// ratios is what is quoted; min and max show how noisy the run was. Setup and cleanup of each turn
// (deleting the uploaded image, creating an empty volume, ...) are outside the timed part.

import { execFile } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MiB = 1024 * 1024;

export interface Contender {
  /** As shown in the table, e.g. "openstack image create --file (6.0.0)". */
  label: string;
  /** Untimed, before each turn. */
  before?(turn: number): Promise<void>;
  /** The timed part. */
  run(turn: number): Promise<void>;
  /** Untimed, after each turn: checks what was uploaded and removes it. */
  after?(turn: number): Promise<void>;
}

export interface PairResult {
  farm: number[];
  peer: number[];
  /** peer / farm, pair by pair. */
  ratios: number[];
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function turn(c: Contender, i: number): Promise<number> {
  await c.before?.(i);
  const t0 = performance.now();
  try {
    await c.run(i);
  } catch (err) {
    throw new Error(`${c.label}: turn ${i}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const seconds = (performance.now() - t0) / 1000;
  await c.after?.(i);
  return seconds;
}

/** `warmup` uncounted pairs, then `repeat` counted pairs in alternating order. */
export async function racePair(farm: Contender, peer: Contender, opts: { repeat: number; warmup: number; log?: (line: string) => void }): Promise<PairResult> {
  const out: PairResult = { farm: [], peer: [], ratios: [] };
  let n = 0;
  for (let i = 0; i < opts.warmup + opts.repeat; i++) {
    const counted = i >= opts.warmup;
    const order = i % 2 === 0 ? [farm, peer] : [peer, farm];
    const t = new Map<Contender, number>();
    for (const c of order) t.set(c, await turn(c, n++));
    const f = t.get(farm)!;
    const p = t.get(peer)!;
    opts.log?.(`  ${counted ? `pair ${i - opts.warmup + 1}` : 'warm-up'}: farm ${f.toFixed(2)} s, peer ${p.toFixed(2)} s, ratio ${(p / f).toFixed(2)}`);
    if (!counted) continue;
    out.farm.push(f);
    out.peer.push(p);
    out.ratios.push(p / f);
  }
  return out;
}

/** Median wall time of a trivial invocation of the peer (its interpreter's and libraries' start-up). */
export async function startupSeconds(cmd: string, args: string[], env: NodeJS.ProcessEnv, times = 3): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    await run(cmd, args, { env });
    xs.push((performance.now() - t0) / 1000);
  }
  return median(xs);
}

export interface PeerRow {
  bench: string;
  /** The input, e.g. "768 MiB raw, 253 MiB data (33%), 67% holes, 20 data regions". */
  input: string;
  farm: string;
  peer: string;
  /** Bytes each side sends for the input (apparent size, or only the data for a sparse upload). */
  farmSends: number;
  peerSends: number;
  result: PairResult;
  /** Median start-up of the peer's process, included in its time (undefined: not measured). */
  peerStartup?: number;
  /** Anything a reader needs to judge the figure. */
  note?: string;
}

/** Target: the farm at least as fast as the peer, on the median of the pair ratios. */
export function meetsTarget(r: PeerRow): boolean {
  return median(r.result.ratios) >= 1;
}

export function formatPeerTable(rows: readonly PeerRow[]): string {
  const mib = (n: number) => `${(n / MiB).toFixed(0)} MiB`;
  const s = (n: number) => n.toFixed(2);
  const lines = [
    '| bench | input | farm | peer | farm sends | peer sends | farm s (median) | peer s (median) | peer start-up s | ratio peer/farm (median, min-max) | pairs | target >= 1 |',
    '|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const ratios = r.result.ratios;
    lines.push(
      `| ${r.bench} | ${r.input} | ${r.farm} | ${r.peer} | ${mib(r.farmSends)} | ${mib(r.peerSends)} | ${s(median(r.result.farm))} | ${s(median(r.result.peer))} | ${r.peerStartup === undefined ? '-' : s(r.peerStartup)} | **${s(median(ratios))}** (${s(Math.min(...ratios))}-${s(Math.max(...ratios))}) | ${ratios.length} | ${meetsTarget(r) ? 'yes' : 'NO'} |`,
    );
  }
  const notes = rows.filter((r) => r.note).map((r) => `- ${r.bench}: ${r.note}`);
  return [...lines, ...(notes.length ? ['', ...notes] : [])].join('\n');
}

// `npm run bench` (all.bench.ts) collects every benchmark's peer rows into one table at the end:
// it names a file in FARM_BENCH_PEER_ROWS, each benchmark appends its rows as JSON lines.
export const PEER_ROWS_ENV = 'FARM_BENCH_PEER_ROWS';

/** Hands the rows to all.bench.ts's summary table when it runs this benchmark (else no-op). */
export function recordPeerRows(rows: readonly PeerRow[]): void {
  const file = process.env[PEER_ROWS_ENV];
  if (file) appendFileSync(file, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

export function readPeerRows(file: string): PeerRow[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as PeerRow);
}
