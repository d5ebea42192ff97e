// `farm build --arch all` with every target on the lab, against the slowest arch's own
// build + fetch + uploads: the concurrency should cost little over the slowest arch alone.
//   node bin/tsnode.js test/bench/build.bench.ts
// Target: wall time of the whole build at most 1.15x the slowest arch's build + fetch + uploads.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { farm } from '../support/cli.ts';
import { ensureLab, labEnv, labInventoryVariant } from '../support/lab.ts';
import type { Manifest } from '../../src/records/manifest.ts';
import type { ArchState, BuildState } from '../../src/records/state.ts';

const ms = (iso: string | undefined) => (iso ? Date.parse(iso) : NaN);

/** An arch's own span: from the start of its build to the end of its last upload. */
function archSpan(a: ArchState): number {
  const ends = [ms(a.at.fetched), ...Object.values(a.uploads).map((u) => ms(u.at.uploaded ?? u.at.failed))].filter(Number.isFinite);
  return (Math.max(...ends) - ms(a.at.building)) / 1000;
}

async function timedBuild(arches: string, env: Record<string, string>): Promise<{ wall: number; state: BuildState }> {
  const variant = await labInventoryVariant();
  const t0 = Date.now();
  const r = await farm(['build', '--arch', arches, '--inventory', variant.file, '--json', '--quiet'], { env, timeoutMs: 1_800_000 });
  const wall = (Date.now() - t0) / 1000;
  if (r.code !== 0) throw new Error(`farm build --arch ${arches} failed (${r.code}):\n${r.stderr.slice(-4000)}`);
  const m = JSON.parse(r.stdout) as Manifest;
  const state = JSON.parse(await readFile(join(variant.dir, 'builds', m.last_run_uuid, 'state.json'), 'utf8')) as BuildState;
  return { wall, state };
}

export async function runBuildBench(): Promise<boolean> {
  await ensureLab();
  const env = await labEnv();
  const all = await timedBuild('all', env);
  const spans = Object.values(all.state.arches)
    .filter((a): a is ArchState => a !== undefined)
    .map((a) => ({ arch: a.arch, span: archSpan(a), build: a.durations?.build ?? NaN, fetch: a.durations?.fetch ?? NaN }));
  spans.sort((a, b) => b.span - a.span);
  const slowest = spans[0]!;
  const alone = await timedBuild(slowest.arch, env);
  const aloneSpan = archSpan(alone.state.arches[slowest.arch]!);

  console.log('\nfarm build --arch all, every target (lab)');
  console.log('arch      build s  fetch s  build+fetch+uploads s');
  for (const s of spans) console.log(`${s.arch.padEnd(8)}  ${s.build.toFixed(1).padStart(7)}  ${s.fetch.toFixed(1).padStart(7)}  ${s.span.toFixed(1).padStart(21)}`);
  const ratioInRun = all.wall / slowest.span;
  const ratioAlone = all.wall / aloneSpan;
  console.log(`\nwall time, all arches:                         ${all.wall.toFixed(1)} s`);
  console.log(`slowest arch (${slowest.arch}) in that run:          ${slowest.span.toFixed(1)} s  -> ${ratioInRun.toFixed(2)}x`);
  console.log(`slowest arch (${slowest.arch}) built alone (wall ${alone.wall.toFixed(1)} s): ${aloneSpan.toFixed(1)} s  -> ${ratioAlone.toFixed(2)}x`);
  const ok = ratioInRun <= 1.15;
  console.log(`${ok ? 'PASS' : 'MISS'} wall <= 1.15x the slowest arch's own build + fetch + uploads: ${ratioInRun.toFixed(2)}x`);
  return ok;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = (await runBuildBench()) ? 0 : 1;
}
