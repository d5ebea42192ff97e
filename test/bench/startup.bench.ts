// Startup: `farm --version` and `farm --help` against `node -e 0`, the floor any Node CLI pays.
//   node bin/tsnode.js test/bench/startup.bench.ts [--repeat N]
// Wall time is the median of N runs of each (interleaved, so a busy machine slows all alike);
// peak RSS comes from separate runs with a preload that reads it at exit. `farm inventory schema`
// is shown too: a light command, through the TypeScript loader. No lab needed.
// Target: --version and --help in under 0.5 s.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FARM_BIN, REPO } from '../support/cli.ts';

const RSS_PRELOAD = fileURLToPath(new URL('./rss-at-exit.mjs', import.meta.url));
const TARGET_S = 0.5;

interface Case {
  name: string;
  args: string[];
  target?: number;
}

const CASES: Case[] = [
  { name: 'node -e 0', args: ['-e', '0'] },
  { name: 'farm --version', args: [FARM_BIN, '--version'], target: TARGET_S },
  { name: 'farm --help', args: [FARM_BIN, '--help'], target: TARGET_S },
  { name: 'farm inventory schema', args: [FARM_BIN, 'inventory', 'schema'] },
];

function once(args: string[], env: NodeJS.ProcessEnv = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
  return seconds;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function runStartupBench(repeat = 10): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), 'farm-startup-'));
  try {
    const times = new Map(CASES.map((c) => [c.name, [] as number[]]));
    const rss = new Map(CASES.map((c) => [c.name, [] as number[]]));
    for (const c of CASES) once(c.args); // warm the page cache (and tsx's own cache)
    for (let i = 0; i < repeat; i++) {
      for (const c of CASES) {
        times.get(c.name)!.push(once(c.args));
        const file = join(dir, 'rss');
        once(['--import', RSS_PRELOAD, ...c.args], { FARM_RSS_FILE: file });
        rss.get(c.name)!.push(Number(readFileSync(file, 'utf8')) / 1024);
      }
    }
    const floor = median(times.get('node -e 0')!);
    const floorRss = median(rss.get('node -e 0')!);
    console.log(`\nstartup, median of ${repeat} runs (peak RSS: median)`);
    console.log('command                  wall s   x node -e 0   RSS MiB   x node -e 0');
    let ok = true;
    const verdicts: string[] = [];
    for (const c of CASES) {
      const t = median(times.get(c.name)!);
      const m = median(rss.get(c.name)!);
      console.log(`${c.name.padEnd(23)}  ${t.toFixed(3).padStart(6)}   ${(t / floor).toFixed(2).padStart(11)}   ${m.toFixed(1).padStart(7)}   ${(m / floorRss).toFixed(2).padStart(11)}`);
      if (c.target !== undefined) {
        const pass = t < c.target;
        ok &&= pass;
        verdicts.push(`${pass ? 'PASS' : 'MISS'} ${c.name} in under ${c.target} s: ${t.toFixed(3)} s (${(t / floor).toFixed(2)}x node -e 0)`);
      }
    }
    console.log('');
    for (const v of verdicts) console.log(v);
    return ok;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const i = process.argv.indexOf('--repeat');
  process.exitCode = (await runStartupBench(i > 0 ? Number(process.argv[i + 1]) : 10)) ? 0 : 1;
}
