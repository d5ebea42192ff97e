// The benchmark's own machinery: the turn-taking timer and the bootc-shaped disk it uploads.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { describeDisk, makeBootcDisk } from '../support/bench-disk.ts';
import { formatPeerTable, median, meetsTarget, racePair, type Contender, type PeerRow } from '../support/bench-pair.ts';
import { partitions } from '../support/disk.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'farm-bench-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('racePair', () => {
  it('alternates who goes first, skips the warm-up, and times only run()', async () => {
    const calls: string[] = [];
    const contender = (label: string, ms: number): Contender => ({
      label,
      before: async () => void (await sleep(150)),
      run: async (turn) => {
        calls.push(`${label}${turn}`);
        await sleep(ms);
      },
      after: async () => void (await sleep(150)),
    });
    const r = await racePair(contender('farm', 20), contender('peer', 100), { repeat: 3, warmup: 1 });
    expect(calls).toEqual(['farm0', 'peer1', 'peer2', 'farm3', 'farm4', 'peer5', 'peer6', 'farm7']);
    expect(r.farm).toHaveLength(3);
    // before/after sleep 150 ms each: were they counted, a farm turn would take >= 320 ms.
    for (const f of r.farm) expect(f).toBeLessThan(0.25);
    for (const [i, ratio] of r.ratios.entries()) expect(ratio).toBeCloseTo(r.peer[i]! / r.farm[i]!, 10);
    expect(median(r.ratios)).toBeGreaterThan(1.5);
  });

  it('names the contender and turn when a run fails', async () => {
    const ok: Contender = { label: 'farm', run: async () => {} };
    const bad: Contender = { label: 'peer tool', run: async () => Promise.reject(new Error('exit 1')) };
    await expect(racePair(ok, bad, { repeat: 1, warmup: 0 })).rejects.toThrow('peer tool: turn 1: exit 1');
  });
});

describe('formatPeerTable', () => {
  const row = (ratios: number[]): PeerRow => ({
    bench: 'b',
    input: 'disk',
    farm: 'f',
    peer: 'p',
    farmSends: 1 << 20,
    peerSends: 1 << 20,
    result: { farm: ratios.map(() => 1), peer: ratios, ratios },
  });
  it('judges the median ratio: the farm at least as fast as the peer', () => {
    expect(meetsTarget(row([0.8, 1.2, 1.1]))).toBe(true);
    expect(meetsTarget(row([0.9, 1.2, 0.95]))).toBe(false);
    const table = formatPeerTable([row([0.9, 1.2, 0.95])]);
    expect(table).toContain('**0.95** (0.90-1.20)');
    expect(table.trimEnd().endsWith('| NO |')).toBe(true);
  });
});

describe('makeBootcDisk', () => {
  it('makes a GPT disk with an ESP, /boot and a filled root, sparse where the filesystems left holes', async () => {
    const disk = await makeBootcDisk(dir, { sizeMiB: 256, rootDataMiB: 8 });
    expect(disk.apparent).toBe(256 << 20);
    const { parts } = await partitions(disk.path);
    expect(parts.map((p) => p.type)).toEqual(['C12A7328-F81F-11D2-BA4B-00A0C93EC93B', '0FC63DAF-8483-4772-8E79-3D69D8477DE4', '0FC63DAF-8483-4772-8E79-3D69D8477DE4']);
    // /boot holds the kernel and initramfs (50 MiB), root the tree.
    expect(disk.data).toBeGreaterThan(58 << 20);
    expect(disk.data).toBeLessThan(disk.apparent / 2);
    expect(disk.regions).toBeGreaterThan(3);
    const root = parts[2]!;
    const { stdout } = await run('debugfs', ['-R', 'ls -l /d0/s0', `${disk.path}?offset=${root.start * 512}`]);
    expect(stdout).toMatch(/(text|bin)0/);
    expect(describeDisk(disk)).toMatch(/^256 MiB raw, \d+ MiB data \(\d+%\), \d+% holes, \d+ data regions$/);
  });
});
