// Build history over real state files in a temp builds directory, including damaged and foreign
// entries that must be passed over, never fatal.

import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { KEY_FILE, lastSuccessful, listBuilds, publishedImages, type PublishedRecord } from '../../src/records/history.ts';
import { cli } from '../support/cli.ts';
import type { ArchState, BuildState, BuildStatus } from '../../src/records/state.ts';
import type { PublishedImage } from '../../uploaders/uploader.ts';
import { decideBuild } from '../../src/triggers/decide.ts';
import { inventorySchema } from '../../src/inventory/schema.ts';
import { renderImages, byTarget } from '../../src/cli/actions/images.ts';

let builds: string;

const disk = (id: string, arch: string, type: string) => ({
  path: `/b/${id}/${arch}/${type}/disk`,
  name: `${arch}/${type}/disk`,
  size: 4096,
  sha256: `${id}-${arch}-${type}`.padEnd(64, '0'),
  format: 'raw' as const,
});

const image = (target: string, kind: PublishedImage['kind'], name: string, imageId: string, location = 'here'): PublishedImage => ({
  target,
  kind,
  location,
  imageName: name,
  imageId,
  artifactId: `${location}:${imageId}`,
  existing: false,
});

function archState(id: string, arch: 'x86_64' | 's390x', uploaded: Array<{ img: PublishedImage; at: string }>, failedUpload = false): ArchState {
  const name = `farm-${id}-${arch}`;
  const uploads: ArchState['uploads'] = {};
  for (const { img, at } of uploaded) {
    uploads[img.target] = { target: img.target, kind: img.kind, type: 'qcow2', step: 'uploaded', images: [img], at: { uploaded: at } };
  }
  if (failedUpload) uploads['broken'] = { target: 'broken', kind: 'openstack', type: 'qcow2', step: 'failed', images: [], error: 'nope', at: {} };
  return {
    arch,
    step: 'fetched',
    types: ['qcow2'],
    imageName: name,
    worker: `lab-${arch}`,
    artifacts: [{ type: 'qcow2', imageName: name, disk: disk(id, arch, 'qcow2'), extra: [] }],
    uploads,
    at: { fetched: '2026-11-21T10:20:00.000Z' },
  };
}

async function writeBuild(id: string, status: BuildStatus, arches: Partial<Record<'x86_64' | 's390x', ArchState>>, extra: Partial<BuildState> = {}): Promise<void> {
  const dir = join(builds, id);
  await mkdir(dir, { recursive: true });
  const state: BuildState = {
    version: 1,
    buildId: id,
    inventory: '/inv/farm.yaml',
    startedAt: extra.startedAt ?? '2026-11-21T10:00:00.000Z',
    finishedAt: '2026-11-21T10:30:00.000Z',
    status,
    arches,
    ...extra,
  };
  await writeFile(join(dir, 'state.json'), JSON.stringify(state, null, 2));
}

beforeEach(async () => {
  builds = join(await mkdtemp(join(tmpdir(), 'farm-history-')), 'builds');
  await mkdir(builds);
  // Oldest: succeeded, uploaded to libvirt.
  await writeBuild('20261120t080000z', 'succeeded', {
    x86_64: archState('20261120t080000z', 'x86_64', [{ img: image('libvirt', 'libvirt', 'farm-a-x86_64', '/pool/a.raw', 'hv1'), at: '2026-11-20T08:40:00.000Z' }]),
  }, { key: 'sha256:old', startedAt: '2026-11-20T08:00:00.000Z', trigger: 'cli' });
  // Succeeded, two arches, two targets; one more upload finished much later (farm upload).
  await writeBuild('20261121t101500z', 'succeeded', {
    x86_64: archState('20261121t101500z', 'x86_64', [
      { img: image('aws', 'aws', 'farm-b-x86_64', 'ami-0b', 'us-east-1'), at: '2026-11-21T10:40:00.000Z' },
      { img: image('libvirt', 'libvirt', 'farm-b-x86_64', '/pool/b.raw', 'hv1'), at: '2026-11-23T09:00:00.000Z' },
    ]),
    s390x: archState('20261121t101500z', 's390x', [], true),
  }, { key: 'sha256:current', startedAt: '2026-11-21T10:15:00.000Z', trigger: 'serve:timer' });
  // Same second, second build: -2 (and a -10 to check numeric ordering of the suffix).
  await writeBuild('20261121t101500z-2', 'failed', { s390x: { ...archState('20261121t101500z-2', 's390x', []), step: 'failed', error: 'boom', artifacts: [] } }, { startedAt: '2026-11-21T10:15:00.500Z' });
  await writeBuild('20261121t101500z-10', 'partial', {}, { startedAt: '2026-11-21T10:15:00.900Z' });
  // Newest: damaged state, a running one, a dir without state, and entries that are not builds.
  await mkdir(join(builds, '20261122t000000z'));
  await writeFile(join(builds, '20261122t000000z', 'state.json'), '{"version": 1, "buildId": "2026112');
  await mkdir(join(builds, '20261122t000001z'));
  await writeBuild('20261122t000002z', 'running', {}, { startedAt: '2026-11-22T00:00:02.000Z' });
  await writeFile(join(builds, '20261122t000003z'), 'a file, not a dir');
  await mkdir(join(builds, 'tmp-notes'));
  await writeFile(join(builds, 'tmp-notes', 'state.json'), '{}');
  await mkdir(join(builds, '20261122t000004z'));
  await writeFile(join(builds, '20261122t000004z', 'state.json'), JSON.stringify({ version: 2, buildId: 'x' }));
});

describe('listBuilds', () => {
  it('lists readable builds newest first and passes over damaged or foreign entries', async () => {
    const list = await listBuilds(builds);
    expect(list.map((b) => b.buildId)).toEqual([
      '20261122t000002z',
      '20261121t101500z-10',
      '20261121t101500z-2',
      '20261121t101500z',
      '20261120t080000z',
    ]);
    const b = list[3]!;
    expect(b.dir).toBe(join(builds, '20261121t101500z'));
    expect(b.status).toBe('succeeded');
    expect(b.key).toBe('sha256:current');
    expect(b.trigger).toBe('serve:timer');
    expect(b.finishedAt).toBe('2026-11-21T10:30:00.000Z');
    expect(b.artifacts).toEqual([
      { arch: 'x86_64', type: 'qcow2', imageName: 'farm-20261121t101500z-x86_64', path: '/b/20261121t101500z/x86_64/qcow2/disk', size: 4096, sha256: expect.any(String) },
      { arch: 's390x', type: 'qcow2', imageName: 'farm-20261121t101500z-s390x', path: '/b/20261121t101500z/s390x/qcow2/disk', size: 4096, sha256: expect.any(String) },
    ]);
    // Only uploaded steps count as published; the failed upload is not an image.
    expect(b.images.map((i) => [i.target, i.imageId])).toEqual([
      ['aws', 'ami-0b'],
      ['libvirt', '/pool/b.raw'],
    ]);
    expect(b.images[0]).toEqual({
      buildId: '20261121t101500z', arch: 'x86_64', type: 'qcow2', target: 'aws', kind: 'aws', location: 'us-east-1',
      imageName: 'farm-b-x86_64', imageId: 'ami-0b', artifactId: 'us-east-1:ami-0b', existing: false, at: '2026-11-21T10:40:00.000Z',
    });
    // A failed arch lists no artifacts.
    expect(list[2]!.artifacts).toEqual([]);
  });

  it('honours the limit, counting only readable builds', async () => {
    expect((await listBuilds(builds, { limit: 2 })).map((b) => b.buildId)).toEqual(['20261122t000002z', '20261121t101500z-10']);
  });

  it('is empty for a builds directory that does not exist yet', async () => {
    expect(await listBuilds(join(builds, 'nope'))).toEqual([]);
    expect(await lastSuccessful(join(builds, 'nope'))).toBeUndefined();
    expect(await publishedImages(join(builds, 'nope'))).toEqual([]);
  });
});

describe('lastSuccessful', () => {
  it('is the newest succeeded build, skipping running, failed and partial ones', async () => {
    const last = await lastSuccessful(builds);
    expect(last?.buildId).toBe('20261121t101500z');
    expect(last?.key).toBe('sha256:current');
    expect(last?.keyParts).toBeUndefined();
  });

  it('carries the key parts from key.json when they belong to the recorded key', async () => {
    await writeFile(join(builds, '20261121t101500z', KEY_FILE), JSON.stringify({ key: 'sha256:current', parts: { 'source.context': 'sha256:1' } }));
    expect((await lastSuccessful(builds))?.keyParts).toEqual({ 'source.context': 'sha256:1' });
    await writeFile(join(builds, '20261121t101500z', KEY_FILE), JSON.stringify({ key: 'sha256:other', parts: {} }));
    expect((await lastSuccessful(builds))?.keyParts).toBeUndefined();
  });
});

describe('publishedImages', () => {
  it('lists every published image, newest upload first', async () => {
    const images = await publishedImages(builds);
    expect(images.map((i) => `${i.buildId} ${i.target} ${i.imageId}`)).toEqual([
      '20261121t101500z libvirt /pool/b.raw', // uploaded 2026-11-23 by a later farm upload
      '20261121t101500z aws ami-0b',
      '20261120t080000z libvirt /pool/a.raw',
    ]);
  });

  it('renders by target for farm images', async () => {
    const grouped = byTarget(await publishedImages(builds));
    expect(grouped.map((i) => i.imageId)).toEqual(['/pool/b.raw', '/pool/a.raw', 'ami-0b']);
    const table = renderImages(grouped).split('\n');
    expect(table[0]).toMatch(/^TARGET\s+KIND\s+WHERE\s+IMAGE NAME\s+IMAGE ID\s+ARCH\s+BUILD\s+WHEN$/);
    expect(table[2]).toMatch(/^libvirt\s+libvirt\s+hv1\s+farm-b-x86_64\s+\/pool\/b\.raw\s+x86_64\s+20261121t101500z\s+2026-11-23 09:00:00Z$/);
    expect(table[4]).toMatch(/^aws\s+aws\s+us-east-1\s+farm-b-x86_64\s+ami-0b\s+x86_64\s+20261121t101500z\s+2026-11-21 10:40:00Z$/);
  });
});

describe('farm images over damaged records', () => {
  it('lists the readable builds and names each damaged or newer record it passed over', async () => {
    const dir = join(builds, '..');
    await writeFile(join(dir, 'farm.yaml'), ['version: 1', 'source: { containerfile: src/Containerfile, context: src }', 'settings: { builds_dir: builds }', 'workers:', '  - { name: w, host: w.example, arch: x86_64 }', ''].join('\n'));
    const r = await cli(['images', '-i', join(dir, 'farm.yaml'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as PublishedRecord[]).map((i) => i.imageId)).toEqual(['/pool/b.raw', '/pool/a.raw', 'ami-0b']);
    const passed = r.stderr.split('\n').filter((l) => l.startsWith('passed over a build record: '));
    expect(passed).toEqual([
      `passed over a build record: build state ${join(builds, '20261122t000004z', 'state.json')} has schema version 2; this farm reads version 1`,
      expect.stringMatching(new RegExp(`^passed over a build record: build state ${join(builds, '20261122t000000z', 'state.json')} is not valid JSON`)),
    ]);
    // The directory without a state (a build being claimed) is not a damaged record.
    expect(r.stderr).not.toContain('20261122t000001z');
  });
});

describe('decideBuild', () => {
  async function inventoryWithKey(): Promise<{ loaded: Parameters<typeof decideBuild>[0]; key: string }> {
    const dir = join(builds, '..');
    await mkdir(join(dir, 'src'), { recursive: true });
    await writeFile(join(dir, 'src', 'Containerfile'), 'FROM quay.io/a/b:1\n');
    const loaded = {
      file: join(dir, 'farm.yaml'),
      dir,
      inventory: inventorySchema.parse({
        version: 1,
        source: { containerfile: 'src/Containerfile', context: 'src' },
        settings: { builds_dir: 'builds' },
        workers: [{ name: 'w', host: 'w.example', arch: 'x86_64' }],
      }),
    };
    const inspect = async (ref: string) => `${ref}@sha256:${'1'.repeat(64)}`;
    const d = await decideBuild(loaded, { signal: new AbortController().signal, inspect });
    return { loaded, key: d.key.key };
  }

  it('builds when the key differs, skips when the last success has it, builds when forced', async () => {
    const { loaded, key } = await inventoryWithKey();
    const signal = new AbortController().signal;
    const inspect = async (ref: string) => `${ref}@sha256:${'1'.repeat(64)}`;
    const changed = await decideBuild(loaded, { signal, inspect });
    expect(changed.build).toBe(true);
    expect(changed.last?.buildId).toBe('20261121t101500z');
    expect(changed.reason).toMatch(/key changed since build 20261121t101500z/);

    await writeBuild('20261121t120000z', 'succeeded', {}, { key, startedAt: '2026-11-21T12:00:00.000Z' });
    const same = await decideBuild(loaded, { signal, inspect });
    expect(same).toMatchObject({ build: false, last: { buildId: '20261121t120000z' } });
    expect(same.reason).toBe(`up to date: build 20261121t120000z has key ${key}`);
    expect((await decideBuild(loaded, { signal, inspect, force: true })).build).toBe(true);

    // With the last key's parts on record, the reason names what changed.
    await writeFile(join(builds, '20261121t120000z', KEY_FILE), JSON.stringify({ key, parts: same.key.parts }));
    const newer = await decideBuild(loaded, { signal, inspect: async (ref) => `${ref}@sha256:${'2'.repeat(64)}` });
    expect(newer.build).toBe(true);
    expect(newer.reason).toMatch(/changed: base\.quay\.io\/a\/b:1, builder\.image\.digest/);
  });
});
