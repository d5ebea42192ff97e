// The upload journal (src/records/upload-journal.ts) and what the uploads stage does with it: each
// object recorded on disk before it is created, its id once known, its record dropped once it is
// removed or the upload is recorded done; a rerun removes what a killed run left before it looks
// for or uploads the image, and keeps a record whose removal failed.

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TargetUploads } from '../../src/pipeline/upload-stage.ts';
import type { LoadedInventory } from '../../src/inventory/schema.ts';
import { inlineInventory } from '../support/inline-inventory.ts';
import { planBuild } from '../../src/plan/plan.ts';
import { BuildRecord } from '../../src/records/build-record.ts';
import type { BuildState } from '../../src/records/state.ts';
import { StateJournal } from '../../src/records/upload-journal.ts';
import { Reporter } from '../../src/ui/reporter.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import type { HalfMade, HalfMadeResult, PublishedImage, UploadContext, Uploader } from '../../uploaders/uploader.ts';

const BUILD = '20261121t101500z';
const NAME = 'farm-20261121-101500-x86_64';

const loaded = (): LoadedInventory =>
  inlineInventory({
    workers: [{ name: 'w', host: 'h', arch: 'x86_64' }],
    arches: { x86_64: { types: ['qcow2'], targets: [{ kind: 'openstack', cloud: 'lab', image_type: 'qcow2' }] } },
  });

async function fetchedStore(): Promise<BuildRecord> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-journal-'));
  const state: BuildState = {
    version: 1,
    buildId: BUILD,
    inventory: '/inv/farm.yaml',
    startedAt: '2026-11-21T10:15:00.000Z',
    status: 'running',
    arches: {
      x86_64: {
        arch: 'x86_64',
        step: 'fetched',
        types: ['qcow2'],
        imageName: NAME,
        worker: 'w',
        at: { fetched: '2026-11-21T10:20:00.000Z' },
        uploads: {},
        artifacts: [{ type: 'qcow2', imageName: NAME, disk: { path: '/b/d.qcow2', name: 'qcow2/disk.qcow2', size: 10, sha256: 'a'.repeat(64), format: 'qcow2' }, extra: [] }],
      },
    },
  };
  return BuildRecord.create(dir, state);
}

const onDisk = async (store: BuildRecord) => JSON.parse(await readFile(store.path, 'utf8')) as BuildState;
const quiet = () => new Reporter({ stream: new Writable({ write: (_c, _e, cb) => cb() }) }).scoped('x86_64');

interface CloudObject {
  id: string;
  name: string;
  attempt: string;
  status: 'queued' | 'active';
}

/** A cloud in memory and an uploader for it that journals what it creates, as the real ones do. */
class CloudUploader implements Uploader {
  readonly kind = 'openstack' as const;
  readonly name = 'openstack';
  readonly formats = ['qcow2'] as const;
  objects: CloudObject[] = [];
  uploads = 0;
  /** removeHalfMade fails for as many calls. */
  removeFailures = 0;
  seen: HalfMade[][] = [];
  /** Set to stop upload() after the create, as a SIGKILL would (no rollback). */
  dieAfterCreate = false;
  private n = 0;

  async preflight() {}
  async find(imageName: string): Promise<PublishedImage[]> {
    return this.objects.filter((o) => o.name === imageName && o.status === 'active').map((o) => this.published(o, true));
  }
  async upload(_artifact: Artifact, imageName: string, ctx: UploadContext): Promise<PublishedImage[]> {
    this.uploads++;
    const entry = await ctx.journal!.begin({ kind: 'glance-image', location: 'RegionOne', name: imageName });
    const obj: CloudObject = { id: `img-${++this.n}`, name: imageName, attempt: ctx.tags['farm-attempt']!, status: 'queued' };
    this.objects.push(obj);
    if (this.dieAfterCreate) throw new Killed(); // before the id is recorded: found by name + attempt
    await entry.identify(obj.id);
    obj.status = 'active';
    return [this.published(obj, false)];
  }
  async delete() {}
  async removeHalfMade(objects: readonly HalfMade[]): Promise<HalfMadeResult[]> {
    this.seen.push([...objects]);
    if (this.removeFailures > 0) {
      this.removeFailures--;
      return objects.map((object) => ({ object, error: 'Glance answered 503' }));
    }
    return objects.map((object) => {
      const mine = this.objects.filter((o) => (object.id ? o.id === object.id : o.name === object.name && o.attempt === object.attempt));
      if (mine.length === 0) return { object, outcome: 'gone' };
      if (mine.every((o) => o.status === 'active')) return { object, outcome: 'complete' };
      this.objects = this.objects.filter((o) => !mine.includes(o));
      return { object, outcome: 'removed' };
    });
  }
  private published(o: CloudObject, existing: boolean): PublishedImage {
    return { target: this.name, kind: this.kind, location: 'RegionOne', imageName: o.name, imageId: o.id, artifactId: `lab:${o.id}`, existing };
  }
}

/** Stands for the process dying: nothing after it runs, so nothing is rolled back. */
class Killed extends Error {}

async function run(stage: TargetUploads, store: BuildRecord): Promise<void> {
  const inv = loaded();
  await stage.uploadArch(planBuild(inv, ['x86_64'], BUILD).arches[0]!, store, new AbortController().signal, quiet());
}

describe('StateJournal', () => {
  it('has each record on disk before begin() returns, adds the id, and drops it', async () => {
    const store = await fetchedStore();
    await store.uploadStep('x86_64', { target: 'openstack', kind: 'openstack', type: 'qcow2' }, 'uploading');
    const journal = new StateJournal(store, 'x86_64', 'openstack');
    expect(journal.attempt).toMatch(/^[0-9a-f]{12}$/);
    expect(new StateJournal(store, 'x86_64', 'openstack').attempt).not.toBe(journal.attempt);

    const a = await journal.begin({ kind: 'glance-image', location: 'RegionOne', name: NAME });
    const b = await journal.begin({ kind: 'cos-object', location: 'bucket', name: `${NAME}.qcow2` });
    let rec = (await onDisk(store)).arches.x86_64!.uploads.openstack!.halfMade!;
    expect(rec.map((r) => [r.kind, r.name, r.attempt, r.id])).toEqual([
      ['glance-image', NAME, journal.attempt, undefined],
      ['cos-object', `${NAME}.qcow2`, journal.attempt, undefined],
    ]);
    expect(new Set(rec.map((r) => r.key)).size).toBe(2);

    await a.identify('img-1');
    rec = (await onDisk(store)).arches.x86_64!.uploads.openstack!.halfMade!;
    expect(rec.map((r) => r.id)).toEqual(['img-1', undefined]);
    await b.drop();
    await a.drop();
    expect((await onDisk(store)).arches.x86_64!.uploads.openstack!.halfMade).toBeUndefined();
  });
});

describe('the uploads stage with the journal', () => {
  it('a finished upload leaves no record; its attempt token is in the tags', async () => {
    const cloud = new CloudUploader();
    const store = await fetchedStore();
    await run(new TargetUploads(loaded(), {}, () => cloud), store);
    const rec = (await onDisk(store)).arches.x86_64!.uploads.openstack!;
    expect(rec.step).toBe('uploaded');
    expect(rec.halfMade).toBeUndefined();
    expect(cloud.objects.map((o) => o.attempt)).toEqual([expect.stringMatching(/^[0-9a-f]{12}$/)]);
    expect(cloud.seen).toEqual([]); // nothing to remove, nothing asked
  });

  it('a rerun removes what a killed run left (found by name and attempt: no id was recorded), then uploads once', async () => {
    const cloud = new CloudUploader();
    cloud.dieAfterCreate = true;
    const store = await fetchedStore();
    const stage = new TargetUploads(loaded(), {}, () => cloud);
    await run(stage, store);
    // The kill left a queued image and its record (the stage's own 'failed' write aside).
    const left = (await onDisk(store)).arches.x86_64!.uploads.openstack!.halfMade!;
    expect(left.map((h) => [h.kind, h.name, h.id])).toEqual([['glance-image', NAME, undefined]]);
    expect(cloud.objects.map((o) => o.status)).toEqual(['queued']);

    cloud.dieAfterCreate = false;
    await run(new TargetUploads(loaded(), {}, () => cloud), store);
    expect(cloud.seen.map((s) => s.map((h) => h.attempt))).toEqual([[left[0]!.attempt]]);
    expect(cloud.objects.map((o) => o.status)).toEqual(['active']); // one image, the new one
    expect(cloud.uploads).toBe(2);
    const rec = (await onDisk(store)).arches.x86_64!.uploads.openstack!;
    expect(rec.step).toBe('uploaded');
    expect(rec.halfMade).toBeUndefined();
    expect(rec.images.map((i) => i.imageId)).toEqual([cloud.objects[0]!.id]);
  });

  it('a failed removal is reported, keeps its record and uploads nothing; the next run tries again', async () => {
    const cloud = new CloudUploader();
    cloud.dieAfterCreate = true;
    const store = await fetchedStore();
    await run(new TargetUploads(loaded(), {}, () => cloud), store);
    cloud.dieAfterCreate = false;
    cloud.removeFailures = 1;

    await run(new TargetUploads(loaded(), {}, () => cloud), store);
    let rec = (await onDisk(store)).arches.x86_64!.uploads.openstack!;
    expect(rec.step).toBe('failed');
    expect(rec.error).toMatch(/could not remove what an earlier run left \(glance-image farm-20261121-101500-x86_64 in RegionOne: Glance answered 503\).*tries again/);
    expect(rec.halfMade).toHaveLength(1);
    expect(cloud.uploads).toBe(1);

    await run(new TargetUploads(loaded(), {}, () => cloud), store);
    rec = (await onDisk(store)).arches.x86_64!.uploads.openstack!;
    expect(rec.step).toBe('uploaded');
    expect(rec.halfMade).toBeUndefined();
    expect(cloud.objects.map((o) => o.status)).toEqual(['active']);
  });

  it('an object the killed run had finished is kept and found, not uploaded again', async () => {
    const cloud = new CloudUploader();
    let store = await fetchedStore();
    await run(new TargetUploads(loaded(), {}, () => cloud), store);
    // As if the run died after the image became active but before 'uploaded' was written.
    const [img] = cloud.objects;
    // The file is edited as that run left it, and read back as the next process would.
    const died = await onDisk(store);
    const u = died.arches.x86_64!.uploads.openstack!;
    u.step = 'uploading';
    u.images = [];
    u.halfMade = [{ key: 'k.1', kind: 'glance-image', location: 'RegionOne', name: NAME, attempt: img!.attempt, id: img!.id, at: '2026-11-21T10:21:00.000Z' }];
    await writeFile(store.path, JSON.stringify(died));
    store = await BuildRecord.open(store.dir);
    await run(new TargetUploads(loaded(), {}, () => cloud), store);
    const rec = (await onDisk(store)).arches.x86_64!.uploads.openstack!;
    expect(rec).toMatchObject({ step: 'uploaded', images: [{ imageId: img!.id, existing: true }] });
    expect(rec.halfMade).toBeUndefined();
    expect(cloud.uploads).toBe(1);
  });

  it('an uploader that cannot remove leftovers fails the target and keeps the record', async () => {
    const cloud = new CloudUploader();
    cloud.dieAfterCreate = true;
    const store = await fetchedStore();
    await run(new TargetUploads(loaded(), {}, () => cloud), store);
    cloud.dieAfterCreate = false;
    const blind: Uploader = { ...cloud, find: cloud.find.bind(cloud), upload: cloud.upload.bind(cloud), preflight: async () => {}, removeHalfMade: undefined };
    await run(new TargetUploads(loaded(), {}, () => blind), store);
    const rec = (await onDisk(store)).arches.x86_64!.uploads.openstack!;
    expect(rec.step).toBe('failed');
    expect(rec.error).toMatch(/does not know how; remove them by hand/);
    expect(rec.halfMade).toHaveLength(1);
  });
});
