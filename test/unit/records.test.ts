import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BuildRecord } from '../../src/records/build-record.ts';
import type { BuildState } from '../../src/records/state.ts';
import { buildManifest } from '../../src/records/manifest.ts';
import { overallStatus } from '../../src/records/status.ts';

function initial(): BuildState {
  return {
    version: 1,
    buildId: '20261121t101500z',
    inventory: '/inv/lab.yaml',
    startedAt: '2026-11-21T10:15:00.000Z',
    status: 'running',
    arches: {
      x86_64: { arch: 'x86_64', step: 'planned', types: ['ami', 'raw'], imageName: 'farm-20261121-101500-x86_64', artifacts: [], uploads: {}, at: {} },
      s390x: { arch: 's390x', step: 'planned', types: ['qcow2'], imageName: 'farm-20261121-101500-s390x', artifacts: [], uploads: {}, at: {} },
    },
  };
}

const file = (name: string, sha: string) => ({ path: `/b/${name}`, name, size: 1024, sha256: sha, format: 'raw' as const });

describe('BuildRecord', () => {
  it('writes every step atomically and serializes concurrent updates', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farm-state-'));
    const store = await BuildRecord.create(dir, initial());
    await Promise.all([
      store.setArchStep('x86_64', 'building', { worker: 'lab-x86_64' }),
      store.setArchStep('s390x', 'building', { worker: 'lab-s390x' }),
      store.setArchStep('s390x', 'failed', { error: 'no space left on device' }),
    ]);
    const onDisk = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as BuildState;
    expect(onDisk.arches.x86_64!.step).toBe('building');
    expect(onDisk.arches.x86_64!.worker).toBe('lab-x86_64');
    expect(onDisk.arches.s390x!.step).toBe('failed');
    expect(onDisk.arches.s390x!.at.building).toBeDefined();
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const reopened = await BuildRecord.open(dir);
    expect(reopened.current).toEqual(onDisk);
  });

  it('refuses a missing or damaged state file with a clear error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farm-state-'));
    await expect(BuildRecord.open(join(dir, 'nope'))).rejects.toThrow(/cannot read build state/);
  });
});

describe('manifest and status', () => {
  it('lists only fetched artifacts, Packer-style, with upload entries carrying artifact ids', () => {
    const s = initial();
    s.arches.x86_64 = {
      ...s.arches.x86_64!,
      step: 'fetched',
      worker: 'lab-x86_64',
      at: { fetched: '2026-11-21T10:20:00.000Z' },
      artifacts: [
        { type: 'ami', imageName: 'farm-20261121-101500-x86_64', disk: file('x86_64/ami/disk.raw', 'a'.repeat(64)), extra: [file('x86_64/run1/manifest-ami.json', 'b'.repeat(64))] },
        { type: 'raw', imageName: 'farm-20261121-101500-x86_64', disk: file('x86_64/raw/disk.raw', 'c'.repeat(64)), extra: [] },
      ],
      uploads: {
        'aws-us-east-1': {
          target: 'aws-us-east-1',
          kind: 'aws',
          type: 'ami',
          step: 'uploaded',
          at: { uploaded: '2026-11-21T10:25:00.000Z' },
          images: [{ target: 'aws-us-east-1', kind: 'aws', location: 'us-east-1', imageName: 'farm-20261121-101500-x86_64', imageId: 'ami-0123', artifactId: 'us-east-1:ami-0123', existing: false }],
        },
      },
    };
    s.arches.s390x = { ...s.arches.s390x!, step: 'failed', error: 'boom' };
    const m = buildManifest(s);
    expect(m.last_run_uuid).toBe('20261121t101500z');
    expect(m.builds.map((b) => b.name)).toEqual(['x86_64-ami', 'x86_64-ami-aws-us-east-1', 'x86_64-raw']);
    const ami = m.builds[0]!;
    expect(ami.files).toEqual([
      { name: 'x86_64/ami/disk.raw', size: 1024, sha256: 'a'.repeat(64) },
      { name: 'x86_64/run1/manifest-ami.json', size: 1024, sha256: 'b'.repeat(64) },
    ]);
    expect(ami.build_time).toBe(Date.parse('2026-11-21T10:20:00.000Z') / 1000);
    expect(ami.custom_data.build_id).toBe('20261121t101500z');
    expect(ami.worker).toBe('lab-x86_64');
    expect(m.builds[1]!.artifact_id).toBe('us-east-1:ami-0123');
    expect(overallStatus(s)).toBe('partial');
    s.arches.s390x = undefined;
    delete s.arches.s390x;
    expect(overallStatus(s)).toBe('succeeded');
    s.arches.x86_64!.uploads['aws-us-east-1']!.step = 'failed';
    expect(overallStatus(s)).toBe('partial');
  });
});
