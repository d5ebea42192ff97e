// `farm serve` watching a git branch on the lab: a bare repository as the "server", a clone that
// commits to it, the service polling every second. A new commit builds exactly once; an unchanged
// branch builds nothing, poll after poll.

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildState } from '../../src/records/state.ts';
import type { ServiceState } from '../../src/service/store.ts';
import { createRepo, type TestRepo } from '../support/git.ts';
import { ensureLab, labInventoryVariant, LAB_INVENTORY } from '../support/lab.ts';
import { killServes, startServe, type ServeProcess } from '../support/serve.ts';

const POLL_S = 1;

let repo: TestRepo;
let variant: { file: string; dir: string };
let service: ServeProcess;

const labSource = async (name: string) => readFile(join(LAB_INVENTORY, '..', 'lab', name), 'utf8');

async function builds(): Promise<string[]> {
  return (await readdir(join(variant.dir, 'builds')).catch(() => [])).filter((n) => !n.startsWith('.')).sort();
}

async function serviceState(): Promise<ServiceState> {
  return JSON.parse(await readFile(join(variant.dir, 'builds', '.service', 'service.json'), 'utf8')) as ServiceState;
}

/** Waits (bounded) until `n` runs finished and nothing runs or waits. */
async function settle(n: number, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await service.snapshot();
    if (s.runs.length >= n && !s.running && !s.pending) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} run(s):\n${service.log()}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Watches for `seconds`: the builds and runs must stay as they are the whole time. */
async function quietFor(seconds: number, expected: { builds: string[]; runs: number }) {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const s = await service.snapshot();
    expect(s.running).toBeNull();
    expect(s.pending).toBeNull();
    expect(s.runs).toHaveLength(expected.runs);
    expect(await builds()).toEqual(expected.builds);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  await ensureLab();
  repo = await createRepo({
    'image/Containerfile': await labSource('Containerfile'),
    'image/motd': await labSource('motd'),
    'image/marker': await labSource('marker'),
    'README.md': 'the lab image, built by farm serve\n',
  });
  variant = await labInventoryVariant((doc) => {
    doc.arches = { s390x: { types: ['qcow2'] } };
    doc.service = {
      source: { git: { url: repo.url, branch: repo.branch, containerfile: 'image/Containerfile', context: 'image' }, poll_interval: `${POLL_S}s` },
      debounce: '200ms',
      arches: ['s390x'],
    };
  });
  service = await startServe(variant.file);
});

afterAll(async () => {
  await service?.stop('SIGTERM').catch(() => undefined);
  killServes();
});

describe('farm serve with a git source', () => {
  it('builds the branch once at first, then nothing while the branch does not move', async () => {
    const first = await settle(1);
    const head = await repo.head();
    expect(first.runs).toHaveLength(1);
    expect(first.runs[0]).toMatchObject({ status: 'succeeded', commit: head });
    expect(first.runs[0]!.reasons).toEqual([expect.objectContaining({ kind: 'source', detail: `main at ${head.slice(0, 12)} (first check)` })]);
    const ids = await builds();
    expect(ids).toHaveLength(1);
    const state = JSON.parse(await readFile(join(variant.dir, 'builds', ids[0]!, 'state.json'), 'utf8')) as BuildState;
    expect(state).toMatchObject({ status: 'succeeded', trigger: 'source' });
    expect(first.service.source).toMatchObject({ kind: 'git', url: repo.url, branch: 'main', commit: head });
    // Five poll intervals without a change: no build.
    await quietFor(5 * POLL_S, { builds: ids, runs: 1 });
    expect((await serviceState()).source.gitHead).toBe(head);
  });

  it('a commit to the branch builds exactly once, from that commit', async () => {
    const before = await builds();
    const commit = await repo.commit({ 'image/motd': 'welcome to the second lab image\n' }, 'new motd');
    const after = await settle(2);
    expect(after.runs[0]).toMatchObject({ status: 'succeeded', commit });
    expect(after.runs[0]!.reasons).toEqual([expect.objectContaining({ kind: 'source', detail: expect.stringMatching(new RegExp(`^main moved to ${commit.slice(0, 12)} \\(from [0-9a-f]{12}\\)$`)) })]);
    const ids = await builds();
    expect(ids).toHaveLength(before.length + 1);
    const newest = after.builds[0]!;
    expect(newest.build_id).toBe(ids[ids.length - 1]);
    expect(newest.commit).toBe(commit);
    expect(newest.key).not.toBe(after.builds[1]!.key);
    // The build read the checkout at that commit: the checkout holds the new file.
    const checkout = join(variant.dir, 'builds', '.service', 'git');
    const [workDir] = await readdir(checkout);
    expect(await readFile(join(checkout, workDir!, 'image', 'motd'), 'utf8')).toBe('welcome to the second lab image\n');
    await quietFor(4 * POLL_S, { builds: ids, runs: 2 });
  });

  it('a commit that does not change the image (outside the context) builds nothing', async () => {
    const ids = await builds();
    const commit = await repo.commit({ 'README.md': 'docs only\n' }, 'docs');
    const after = await settle(3);
    expect(after.runs[0]).toMatchObject({ status: 'skipped', commit });
    expect(after.runs[0]!.message).toMatch(/^up to date: build \S+ has key sha256:/);
    expect(await builds()).toEqual(ids);
    await quietFor(3 * POLL_S, { builds: ids, runs: 3 });
  });
});
