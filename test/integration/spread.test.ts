// max_builds on the lab: x86_64's ami and raw are separate bib runs; with two x86_64 workers of
// max_builds 1 they run on different workers at the same time (the lab has one x86_64 host, listed
// twice under two names with their own output dirs). Overlap is read from the run times recorded
// in state.json, not from wall time. A failed run stops the other one and nothing is recorded.

import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { farm } from '../support/cli.ts';
import { ensureLab, labExec, labInventoryVariant } from '../support/lab.ts';
import { sha256sum } from '../support/disk.ts';
import type { Manifest } from '../../src/records/manifest.ts';
import type { BuildState } from '../../src/records/state.ts';

const HOST = 'lab-x86_64';
const OUTPUT_B = '/var/lib/farm/output-b';

async function leftovers(): Promise<string> {
  const containers = await labExec(HOST, ['podman', 'ps', '-a', '--external', '--filter', 'label=io.farm.managed=true', '--format', '{{.Names}}']);
  const images = await labExec(HOST, ['podman', 'images', '--filter', 'label=io.farm.managed=true', '--format', '{{.Repository}}:{{.Tag}}']);
  const outputs = await labExec(HOST, ['find', '/var/lib/farm/output', OUTPUT_B, '-mindepth', '1', '-maxdepth', '1']);
  return [containers, images, outputs].join('').trim();
}

/** The lab inventory with x86_64 (ami + raw, no targets) on two worker entries of one host. */
async function twoWorkers(change: (b: Record<string, unknown>) => void = () => {}) {
  return labInventoryVariant((doc) => {
    const a = doc.workers.find((w: { arch: string }) => w.arch === 'x86_64');
    a.max_builds = 1;
    const b = { ...a, name: 'lab-x86_64-b', output_dir: OUTPUT_B, max_builds: 1 };
    change(b);
    doc.workers = [a, b];
    doc.arches = { x86_64: { types: ['ami', 'raw'] } };
  });
}

beforeAll(async () => {
  await ensureLab();
});

describe('an arch spread over its workers', () => {
  it('runs ami and raw on different workers at the same time, each building its image, and records both', async () => {
    const variant = await twoWorkers();
    const r = await farm(['build', '--arch', 'x86_64', '-i', variant.file, '--json', '--quiet', '--no-upload']);
    expect(r.code, r.stderr).toBe(0);
    const manifest = JSON.parse(r.stdout) as Manifest;
    const dir = join(variant.dir, 'builds', manifest.last_run_uuid);
    const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as BuildState;
    const x86 = state.arches.x86_64!;
    expect(x86.step).toBe('fetched');

    const [ami, raw] = x86.runs!;
    expect(ami!.types).toEqual(['ami']);
    expect(raw!.types).toEqual(['raw']);
    expect(new Set([ami!.worker, raw!.worker])).toEqual(new Set(['lab-x86_64', 'lab-x86_64-b']));
    // Each run started before the other had finished: they overlapped.
    const t = (s: string | undefined) => Date.parse(s!);
    expect(t(ami!.at.started)).toBeLessThan(t(raw!.at.built));
    expect(t(raw!.at.started)).toBeLessThan(t(ami!.at.built));

    // Each worker built its own image and sent the context; each disk came from the worker that wrote it.
    expect(r.stderr).toMatch(/context sent to lab-x86_64: \d+ files/);
    expect(r.stderr).toMatch(/context sent to lab-x86_64-b: \d+ files/);
    for (const run of [ami!, raw!]) {
      const type = run.types[0]!;
      const art = x86.artifacts.find((a) => a.type === type)!;
      expect(art.worker).toBe(run.worker);
      expect(await sha256sum(art.disk.path)).toBe(art.disk.sha256);
      expect((await stat(art.disk.path)).size).toBe(art.disk.size);
      expect(manifest.builds.find((b) => b.name === `x86_64-${type}`)!.worker).toBe(run.worker);
    }
    expect(await leftovers()).toBe('');
  });

  it('a failed run stops the other, fails the arch with its error and records nothing', async () => {
    // The second worker's bib sees an empty container storage: its run fails once bib starts.
    await labExec(HOST, ['mkdir', '-p', '/var/tmp/farm-empty-storage']);
    const variant = await twoWorkers((b) => {
      b.storage = '/var/tmp/farm-empty-storage';
    });
    const r = await farm(['build', '--arch', 'x86_64', '-i', variant.file, '--quiet', '--no-upload']);
    expect(r.code).toBe(1);
    const [id] = await readdir(join(variant.dir, 'builds'));
    const dir = join(variant.dir, 'builds', id!);
    const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as BuildState;
    const x86 = state.arches.x86_64!;
    expect(x86.step).toBe('failed');
    expect(x86.error).toMatch(/bootc-image-builder exited with code \d+ on lab-x86_64-b/);
    expect(x86.artifacts).toEqual([]);
    expect(x86.runs!.map((run) => run.worker).sort()).toEqual(['lab-x86_64', 'lab-x86_64-b']);
    // No disk of either run stayed on the coordinator, nothing on the host.
    expect((await readdir(join(dir, 'x86_64'), { withFileTypes: true })).filter((e) => e.isDirectory())).toEqual([]);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest.builds).toEqual([]);
    expect(await leftovers()).toBe('');
    await labExec(HOST, ['rmdir', '/var/tmp/farm-empty-storage']);
  });
});
