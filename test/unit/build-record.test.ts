// The owner of a build's record (src/records/build-record.ts) over real files in a temp dir: its
// transitions and the ones it refuses, the schema check on every read (a damaged or newer file is
// refused by name and left as it was), and concurrent changes from arches and uploads, serialised
// and atomic (a reader polling the file meanwhile only ever sees whole, valid records).

import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LoadedInventory } from '../../src/inventory/schema.ts';
import { inlineInventory } from '../support/inline-inventory.ts';
import { planBuild } from '../../src/plan/plan.ts';
import { BuildRecord, initialState } from '../../src/records/build-record.ts';
import { listBuilds } from '../../src/records/history.ts';
import { BuildRecordError, STATE_VERSION, buildStateSchema } from '../../src/records/state-schema.ts';
import type { ArtifactRecord, BuildState } from '../../src/records/state.ts';
import type { ImageType } from '../../src/inventory/schema.ts';
import type { PublishedImage } from '../../uploaders/uploader.ts';

const BUILD = '20261121t101500z';

const loaded = (): LoadedInventory =>
  inlineInventory({
    workers: [
      { name: 'wx', host: 'hx', arch: 'x86_64' },
      { name: 'wa', host: 'ha', arch: 'aarch64' },
    ],
    arches: { x86_64: { types: ['qcow2', 'raw'] }, aarch64: { types: ['qcow2'] } },
  });

async function newRecord(): Promise<BuildRecord> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-record-'));
  const plan = planBuild(loaded(), ['x86_64', 'aarch64', 's390x'], BUILD);
  return BuildRecord.create(dir, initialState(plan, { inventory: '/inv/farm.yaml', key: 'sha256:k', trigger: 'cli' }));
}

const onDisk = async (r: BuildRecord) => JSON.parse(await readFile(r.path, 'utf8')) as BuildState;
const artifact = (type: ImageType): ArtifactRecord => ({
  type,
  imageName: 'n',
  disk: { path: `/b/${type}`, name: `x/${type}`, size: 1, sha256: 'a'.repeat(64), format: type === 'qcow2' ? 'qcow2' : 'raw' },
  extra: [],
});
const image = (target: string, id: string): PublishedImage => ({ target, kind: 'openstack', location: 'here', imageName: 'n', imageId: id, artifactId: `here:${id}`, existing: false });

async function fetch(r: BuildRecord, arch: 'x86_64' | 'aarch64', types: ImageType[]): Promise<void> {
  await r.buildingStarted(arch, [types]);
  await r.runStarted(arch, 0, types, `w-${arch}`);
  await r.runBuilt(arch, 0);
  await r.setArchStep(arch, 'built');
  await r.setArchStep(arch, 'fetching');
  await r.archFetched(arch, types.map(artifact), { build: 1, fetch: 2 });
}

describe('BuildRecord transitions', () => {
  it('starts from the plan: planned arches, the unbuildable one failed, the schema version set', async () => {
    const r = await newRecord();
    const s = await onDisk(r);
    expect(s.version).toBe(STATE_VERSION);
    expect(s).toMatchObject({ buildId: BUILD, status: 'running', key: 'sha256:k', trigger: 'cli' });
    expect(s.arches.x86_64).toMatchObject({ step: 'planned', types: ['qcow2', 'raw'] });
    expect(s.arches.s390x).toMatchObject({ step: 'failed', error: expect.stringMatching(/no worker of arch s390x/) });
    expect(r.current).toEqual(s);
  });

  it('walks an arch through its steps and an upload to uploaded, then finishes with the manifest', async () => {
    const r = await newRecord();
    await fetch(r, 'x86_64', ['qcow2', 'raw']);
    const t = { target: 'lab', kind: 'openstack', type: 'qcow2' as const };
    await r.uploadStep('x86_64', t, 'uploading');
    await r.halfMadeBegun('x86_64', 'lab', { key: 'a.1', kind: 'glance-image', location: 'here', name: 'n', attempt: 'a', at: '2026-11-21T10:21:00.000Z' });
    await r.halfMadeIdentified('x86_64', 'lab', 'a.1', 'img-1');
    expect((await onDisk(r)).arches.x86_64!.uploads.lab!.halfMade).toEqual([expect.objectContaining({ key: 'a.1', id: 'img-1' })]);
    await r.uploadStep('x86_64', t, 'uploaded', { images: [image('lab', 'img-1')] });
    await r.archFailed('aarch64', 'boom');
    const manifest = await r.finish(false);

    const s = await onDisk(r);
    const x = s.arches.x86_64!;
    expect(x.step).toBe('fetched');
    expect(Object.keys(x.at)).toEqual(['planned', 'building', 'built', 'fetching', 'fetched']);
    expect(x.worker).toBe('w-x86_64');
    expect(x.runs![0]!.at.built).toBeDefined();
    expect(x.uploads.lab).toMatchObject({ step: 'uploaded', images: [{ imageId: 'img-1' }] });
    expect(x.uploads.lab!.halfMade).toBeUndefined();
    expect(s.arches.aarch64).toMatchObject({ step: 'failed', error: 'boom', artifacts: [] });
    expect(s.status).toBe('partial');
    expect(s.finishedAt).toBeDefined();
    expect(JSON.parse(await readFile(join(r.dir, 'manifest.json'), 'utf8'))).toEqual(manifest);
    expect(manifest.builds.map((b) => b.name)).toEqual(['x86_64-qcow2', 'x86_64-qcow2-lab', 'x86_64-raw']);
  });

  it('refuses a step out of order, an upload of an arch not fetched, or touching an uploaded one; the file stays', async () => {
    const r = await newRecord();
    const before = await readFile(r.path, 'utf8');
    await expect(r.setArchStep('x86_64', 'fetched')).rejects.toThrow(`build ${BUILD}: x86_64 cannot go from planned to fetched`);
    await expect(r.uploadStep('x86_64', { target: 'lab', kind: 'openstack', type: 'qcow2' }, 'uploading')).rejects.toThrow(/x86_64 is planned, not fetched/);
    await expect(r.setArchStep('ppc64le', 'building')).rejects.toThrow(/arch ppc64le is not part of build/);
    await expect(r.runBuilt('x86_64', 3)).rejects.toThrow(/run 3 of x86_64 was never started/);
    expect(await readFile(r.path, 'utf8')).toBe(before);

    await fetch(r, 'x86_64', ['qcow2']);
    const t = { target: 'lab', kind: 'openstack', type: 'qcow2' as const };
    await expect(r.uploadStep('x86_64', t, 'uploaded')).rejects.toThrow(/cannot go from nothing to uploaded/);
    await r.uploadStep('x86_64', t, 'failed', { error: 'first try' });
    await r.uploadStep('x86_64', t, 'uploading'); // a failed upload is tried again
    await r.uploadStep('x86_64', t, 'uploaded', { images: [image('lab', 'i')] });
    await expect(r.uploadStep('x86_64', t, 'uploading')).rejects.toThrow(/cannot go from uploaded to uploading/);
    await expect(r.archFailed('x86_64', 'late')).rejects.toThrow(/cannot go from fetched to failed/);
    expect((await onDisk(r)).arches.x86_64!.uploads.lab).toMatchObject({ step: 'uploaded' });
    expect((await onDisk(r)).arches.x86_64!.uploads.lab!.error).toBeUndefined();
    // A refused change does not block the ones queued after it.
    await r.failUnfinished('stopped');
    expect((await onDisk(r)).arches.aarch64).toMatchObject({ step: 'failed', error: 'stopped' });
  });

  it('never writes a state it could not read back', async () => {
    const r = await newRecord();
    const before = await readFile(r.path, 'utf8');
    await expect(r.archFetched('x86_64', [{ ...artifact('qcow2'), type: 'floppy' as ImageType }], { build: 0, fetch: 0 })).rejects.toThrow(/cannot go from planned/);
    await r.buildingStarted('x86_64', [['qcow2']]);
    await r.setArchStep('x86_64', 'built');
    await r.setArchStep('x86_64', 'fetching');
    const mid = await readFile(r.path, 'utf8');
    expect(mid).not.toBe(before);
    await expect(r.archFetched('x86_64', [{ ...artifact('qcow2'), type: 'floppy' as ImageType }], { build: 0, fetch: 0 })).rejects.toThrow(/refusing to write .*state\.json: arches\.x86_64\.artifacts\.0\.type/);
    expect(await readFile(r.path, 'utf8')).toBe(mid);
    expect(r.current.arches.x86_64!.step).toBe('fetching');
  });

  it('closes a build left running, and leaves one that recorded its end', async () => {
    const r = await newRecord();
    await r.buildingStarted('x86_64', [['qcow2', 'raw']]);
    await (await BuildRecord.open(r.dir)).closeIfRunning(false, 'preflight failed');
    const s = await onDisk(r);
    expect(s.status).toBe('failed');
    expect(s.arches.x86_64).toMatchObject({ step: 'failed', error: 'preflight failed' });
    expect(s.arches.x86_64!.at.failed).toBe(s.finishedAt);
    const again = await BuildRecord.open(r.dir);
    await again.closeIfRunning(true, 'other');
    expect(await onDisk(r)).toEqual(s);
  });

  it('writes key.json, and a key that moved into the state and the manifest', async () => {
    const r = await newRecord();
    await r.finish(false);
    expect(await r.recordKey({ key: 'sha256:k', parts: { a: '1' } })).toBeUndefined();
    expect(JSON.parse(await readFile(join(r.dir, 'key.json'), 'utf8'))).toEqual({ key: 'sha256:k', parts: { a: '1' } });
    const manifest = await r.recordKey({ key: 'sha256:k2', parts: { a: '2' } });
    expect((await onDisk(r)).key).toBe('sha256:k2');
    expect(JSON.parse(await readFile(join(r.dir, 'manifest.json'), 'utf8'))).toEqual(manifest);
  });
});

describe('BuildRecord concurrency', () => {
  it('serialises concurrent changes from arches and uploads: every one lands, each write whole', async () => {
    const r = await newRecord();
    await Promise.all([fetch(r, 'x86_64', ['qcow2', 'raw']), fetch(r, 'aarch64', ['qcow2'])]);
    // A reader polling the file the whole time: every read must be a complete, valid record.
    let reading = true;
    let reads = 0;
    const reader = (async () => {
      while (reading) {
        const s: unknown = JSON.parse(await readFile(r.path, 'utf8'));
        expect(buildStateSchema.safeParse(s).success).toBe(true);
        reads++;
        await new Promise((res) => setImmediate(res));
      }
    })();
    const targets = Array.from({ length: 8 }, (_, i) => `t${i}`);
    await Promise.all(
      (['x86_64', 'aarch64'] as const).flatMap((arch) =>
        targets.map(async (target) => {
          const t = { target, kind: 'openstack', type: 'qcow2' as const };
          await r.uploadStep(arch, t, 'uploading');
          await r.halfMadeBegun(arch, target, { key: `${target}.1`, kind: 'glance-image', location: 'here', name: target, attempt: target, at: '2026-11-21T10:21:00.000Z' });
          await r.halfMadeIdentified(arch, target, `${target}.1`, `id-${target}`);
          await r.uploadStep(arch, t, 'uploaded', { images: [image(target, `${arch}-${target}`)] });
        }),
      ),
    );
    reading = false;
    await reader;
    const s = await onDisk(r);
    expect(r.current).toEqual(s);
    for (const arch of ['x86_64', 'aarch64'] as const) {
      expect(Object.keys(s.arches[arch]!.uploads).sort()).toEqual([...targets].sort());
      for (const t of targets) expect(s.arches[arch]!.uploads[t]).toMatchObject({ step: 'uploaded', images: [{ imageId: `${arch}-${t}` }] });
    }
    expect(reads).toBeGreaterThan(0);
    expect((await readdir(r.dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('reading a record', () => {
  async function damaged(text: string): Promise<{ dir: string; file: string }> {
    const r = await newRecord();
    await writeFile(r.path, text);
    return { dir: r.dir, file: r.path };
  }

  async function refusal(dir: string): Promise<BuildRecordError> {
    const err = await BuildRecord.open(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BuildRecordError);
    return err as BuildRecordError;
  }

  it('refuses a torn file by name, with what to do', async () => {
    const { dir, file } = await damaged('{"version": 1, "buildId": "2026');
    const err = await refusal(dir);
    expect(err.problem).toBe('json');
    expect(err.file).toBe(file);
    expect(err.code).toBe('STATE');
    expect(err.message).toMatch(new RegExp(`^build state ${file} is not valid JSON`));
    expect(err.hint).toMatch(/damaged or edited by hand: restore it from a backup, or move its build directory/);
  });

  it('refuses a wrong shape, naming the fields', async () => {
    const r = await newRecord();
    const s = await onDisk(r);
    (s.arches.x86_64 as unknown as Record<string, unknown>).step = 'baking';
    delete (s as Partial<BuildState>).startedAt;
    await writeFile(r.path, JSON.stringify(s));
    const err = await refusal(r.dir);
    expect(err.problem).toBe('shape');
    expect(err.message).toContain(`build state ${r.path} is not a farm build record:`);
    expect(err.message).toContain('startedAt:');
    expect(err.message).toContain('arches.x86_64.step:');
    // An arch filed under another arch's key is a wrong shape too.
    const t = structuredClone(r.current) as BuildState;
    t.arches.aarch64 = { ...t.arches.aarch64!, arch: 'x86_64' };
    await writeFile(r.path, JSON.stringify(t));
    expect((await refusal(r.dir)).message).toContain('arches.aarch64.arch: is x86_64, under the key aarch64');
    for (const text of ['[]', 'null', '"state"', '{}']) {
      await writeFile(r.path, text);
      expect((await refusal(r.dir)).problem).toBe('shape');
    }
  });

  it('refuses a newer schema version, saying to use a newer farm', async () => {
    const r = await newRecord();
    const s = { ...(await onDisk(r)), version: STATE_VERSION + 1, somethingNew: { x: 1 } };
    await writeFile(r.path, JSON.stringify(s));
    const err = await refusal(r.dir);
    expect(err.problem).toBe('newer');
    expect(err.message).toBe(`build state ${r.path} has schema version ${STATE_VERSION + 1}; this farm reads version ${STATE_VERSION}`);
    expect(err.hint).toMatch(/written by a newer farm/);
  });

  it('keeps fields it does not know in a record of its own version when it rewrites it', async () => {
    const r = await newRecord();
    await writeFile(r.path, JSON.stringify({ ...(await onDisk(r)), note: 'kept' }));
    const again = await BuildRecord.open(r.dir);
    await again.archFailed('x86_64', 'x');
    expect(((await onDisk(r)) as unknown as { note: string }).note).toBe('kept');
  });

  it('the history passes a damaged record over and says which, but not a build still being claimed', async () => {
    const builds = await mkdtemp(join(tmpdir(), 'farm-record-builds-'));
    await mkdir(join(builds, BUILD));
    const good = await BuildRecord.create(join(builds, BUILD), initialState(planBuild(loaded(), ['x86_64'], BUILD), { inventory: '/inv/farm.yaml' }));
    await good.archFailed('x86_64', 'x');
    await mkdir(join(builds, '20261121t101501z'));
    await writeFile(join(builds, '20261121t101501z', 'state.json'), '{');
    await mkdir(join(builds, '20261121t101502z'));
    const skipped: BuildRecordError[] = [];
    const list = await listBuilds(builds, { onSkipped: (e) => skipped.push(e) });
    expect(list.map((b) => b.buildId)).toEqual([BUILD]);
    expect(skipped.map((e) => [e.file, e.problem])).toEqual([[join(builds, '20261121t101501z', 'state.json'), 'json']]);
  });
});
