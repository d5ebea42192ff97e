// The uploads stage's own logic (selection, preflight, idempotency, recorded steps, failures kept
// per target), with in-memory uploaders; the real uploaders are tested against their services.

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TargetUploads, checkSelection, selectTargets } from '../../src/pipeline/upload-stage.ts';
import type { LoadedInventory, Target } from '../../src/inventory/schema.ts';
import { inlineInventory } from '../support/inline-inventory.ts';
import { planBuild } from '../../src/plan/plan.ts';
import { BuildRecord } from '../../src/records/build-record.ts';
import type { BuildState } from '../../src/records/state.ts';
import { Reporter } from '../../src/ui/reporter.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import type { PublishedImage, Uploader, UploadContext } from '../../uploaders/uploader.ts';
import { Writable } from 'node:stream';

const BUILD = '20261121t101500z';

const loaded = (): LoadedInventory =>
  inlineInventory({
    workers: [{ name: 'w', host: 'h', arch: 'x86_64' }],
    arches: {
      x86_64: {
        types: ['ami', 'qcow2'],
        targets: [
          { kind: 'aws', region: 'us-east-1' },
          { kind: 'aws', region: 'eu-central-1', naming: 'aws-{name}-{arch}' },
          { kind: 'openstack', cloud: 'lab', image_type: 'qcow2' },
        ],
      },
    },
  });

class MemoryUploader implements Uploader {
  readonly kind: Target['kind'];
  readonly formats = ['raw', 'qcow2'] as const;
  published = new Map<string, PublishedImage>();
  uploads: Array<{ artifact: Artifact; name: string }> = [];
  failNext = false;
  preflightError: string | undefined;
  logLines: string[] = [];
  constructor(readonly name: string, kind: Target['kind']) {
    this.kind = kind;
  }
  async preflight() {
    if (this.preflightError) throw new Error(this.preflightError);
  }
  async find(imageName: string) {
    const p = this.published.get(imageName);
    return p ? [{ ...p, existing: true }] : [];
  }
  async upload(artifact: Artifact, imageName: string, ctx: UploadContext) {
    this.uploads.push({ artifact, name: imageName });
    expect(ctx.tags['farm-build-id']).toBe(BUILD);
    for (const line of this.logLines) ctx.log(line);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('RegisterImage failed: InvalidSnapshot.NotFound');
    }
    const img: PublishedImage = { target: this.name, kind: this.kind, location: 'here', imageName, imageId: `id-${this.uploads.length}`, artifactId: `here:id-${this.uploads.length}`, existing: false };
    this.published.set(imageName, img);
    return [img];
  }
  async delete() {}
}

async function fetchedStore(): Promise<BuildRecord> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-up-'));
  const disk = (name: string, format: 'raw' | 'qcow2') => ({ path: `/b/${name}`, name, size: 10, sha256: 'a'.repeat(64), format });
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
        types: ['ami', 'qcow2'],
        imageName: 'farm-20261121-101500-x86_64',
        worker: 'w',
        at: { fetched: '2026-11-21T10:20:00.000Z' },
        uploads: {},
        artifacts: [
          { type: 'ami', imageName: 'farm-20261121-101500-x86_64', disk: disk('x86_64/ami/disk.raw', 'raw'), extra: [] },
          { type: 'qcow2', imageName: 'farm-20261121-101500-x86_64', disk: disk('x86_64/qcow2/disk.qcow2', 'qcow2'), extra: [] },
        ],
      },
    },
  };
  return BuildRecord.create(dir, state);
}

const quiet = () => new Reporter({ stream: new Writable({ write: (_c, _e, cb) => cb() }) });

describe('target selection', () => {
  it('--only/--skip take target names or kinds; unknown names are refused', () => {
    const inv = loaded();
    const targets = inv.inventory.arches.x86_64!.targets;
    expect(selectTargets(targets, {}).map((t) => t.name)).toEqual(['aws-us-east-1', 'aws-eu-central-1', 'openstack']);
    expect(selectTargets(targets, { only: ['aws'] }).map((t) => t.name)).toEqual(['aws-us-east-1', 'aws-eu-central-1']);
    expect(selectTargets(targets, { skip: ['aws-us-east-1'] }).map((t) => t.name)).toEqual(['aws-eu-central-1', 'openstack']);
    expect(() => checkSelection(inv, { only: ['gcp'] })).toThrow(/unknown target 'gcp'/);
  });
});

describe('TargetUploads', () => {
  it('uploads each target the artifact of its type, under its name, and records every step', async () => {
    const inv = loaded();
    const made = new Map<string, MemoryUploader>();
    const stage = new TargetUploads(inv, {}, (t, name) => {
      const u = new MemoryUploader(name, t.kind);
      made.set(name, u);
      return u;
    });
    const plan = planBuild(inv, ['x86_64'], BUILD);
    await stage.preflight(plan, new AbortController().signal);
    const store = await fetchedStore();
    await stage.uploadArch(plan.arches[0]!, store, new AbortController().signal, quiet().scoped('x86_64'));

    expect(made.get('aws-us-east-1')!.uploads.map((u) => [u.artifact.disk.format, u.name])).toEqual([['raw', 'farm-20261121-101500-x86_64']]);
    expect(made.get('aws-eu-central-1')!.uploads.map((u) => u.name)).toEqual(['aws-farm-x86_64']);
    expect(made.get('openstack')!.uploads.map((u) => u.artifact.type)).toEqual(['qcow2']);
    const ups = store.current.arches.x86_64!.uploads;
    expect(Object.values(ups).map((u) => u.step)).toEqual(['uploaded', 'uploaded', 'uploaded']);
    expect(ups['aws-us-east-1']!.images[0]!.artifactId).toBe('here:id-1');

    // Running the stage again for the same build uploads nothing.
    await stage.uploadArch(plan.arches[0]!, store, new AbortController().signal, quiet().scoped('x86_64'));
    expect([...made.values()].map((u) => u.uploads.length)).toEqual([1, 1, 1]);
  });

  it('finds an image published earlier instead of uploading it again', async () => {
    const inv = loaded();
    const u = new MemoryUploader('aws-us-east-1', 'aws');
    u.published.set('farm-20261121-101500-x86_64', { target: 'aws-us-east-1', kind: 'aws', location: 'us-east-1', imageName: 'farm-20261121-101500-x86_64', imageId: 'ami-old', artifactId: 'us-east-1:ami-old', existing: false });
    const stage = new TargetUploads(inv, { only: ['aws-us-east-1'] }, () => u);
    const plan = planBuild(inv, ['x86_64'], BUILD);
    const store = await fetchedStore();
    await stage.uploadArch(plan.arches[0]!, store, new AbortController().signal, quiet().scoped('x86_64'));
    expect(u.uploads).toEqual([]);
    const rec = store.current.arches.x86_64!.uploads['aws-us-east-1']!;
    expect(rec.step).toBe('uploaded');
    expect(rec.images[0]).toMatchObject({ imageId: 'ami-old', existing: true });
  });

  it("a failed target is recorded as failed while the others go on", async () => {
    const inv = loaded();
    const ups = new Map<string, MemoryUploader>();
    const stage = new TargetUploads(inv, {}, (t, name) => {
      const u = new MemoryUploader(name, t.kind);
      if (name === 'aws-us-east-1') u.failNext = true;
      ups.set(name, u);
      return u;
    });
    const plan = planBuild(inv, ['x86_64'], BUILD);
    const store = await fetchedStore();
    await stage.uploadArch(plan.arches[0]!, store, new AbortController().signal, quiet().scoped('x86_64'));
    const rec = store.current.arches.x86_64!.uploads;
    expect(rec['aws-us-east-1']).toMatchObject({ step: 'failed', error: expect.stringMatching(/RegisterImage failed/) });
    expect(rec['openstack']!.step).toBe('uploaded');
    expect(rec['aws-eu-central-1']!.step).toBe('uploaded');
  });

  it('prefixes every line an uploader logs with the target name, once (uploaders never name themselves)', async () => {
    const inv = loaded();
    const u = new MemoryUploader('aws-us-east-1', 'aws');
    // An uploader's line may start with its own name for its own reasons (an object named after
    // the target): the stage does not guess, it always prefixes.
    u.logLines = ['snapshot snap-1 started', 'aws-us-east-1: bucket policy checked'];
    const stage = new TargetUploads(inv, { only: ['aws-us-east-1'] }, () => u);
    const plan = planBuild(inv, ['x86_64'], BUILD);
    const store = await fetchedStore();
    const lines: string[] = [];
    const reporter = new Reporter({ color: false, stream: new Writable({ write: (c, _e, cb) => cb(void lines.push(String(c))) }) });
    await stage.uploadArch(plan.arches[0]!, store, new AbortController().signal, reporter.scoped('x86_64'));
    const text = lines.join('');
    expect(text).toMatch(/\] +aws-us-east-1: snapshot snap-1 started\n/);
    expect(text).toMatch(/\] +aws-us-east-1: aws-us-east-1: bucket policy checked\n/);
  });

  it('preflight reports every failing target at once, and a type the arch does not build', async () => {
    const inv = loaded();
    inv.inventory.arches.x86_64!.types = ['ami'];
    const stage = new TargetUploads(inv, {}, (t, name) => {
      const u = new MemoryUploader(name, t.kind);
      if (t.kind === 'aws') u.preflightError = 'no credentials in the default chain';
      return u;
    });
    const plan = planBuild(inv, ['x86_64'], BUILD);
    const err = await stage.preflight(plan, new AbortController().signal).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const msg = (err as Error).message;
    expect(msg).toMatch(/preflight failed for 3 target/);
    expect(msg).toMatch(/aws-us-east-1: no credentials/);
    expect(msg).toMatch(/aws-eu-central-1: no credentials/);
    expect(msg).toMatch(/openstack: takes qcow2 images, but x86_64 builds only ami: add qcow2 to arches.x86_64.types/);
  });
});

describe('targets of the same name on two arches', () => {
  it('get one uploader each, with their own settings', async () => {
    const inv = inlineInventory({
      workers: [{ name: 'a', host: 'h', arch: 'x86_64' }, { name: 'b', host: 'h', arch: 'aarch64' }],
      arches: {
        x86_64: { targets: [{ kind: 'aws', region: 'us-east-1', method: 'ebs-direct' }] },
        aarch64: { targets: [{ kind: 'aws', region: 'us-east-1', method: 's3-import', bucket: 'b' }] },
      },
    });
    const made: Array<{ name: string; method: string }> = [];
    const stage = new TargetUploads(inv, {}, (t, name) => {
      made.push({ name, method: (t as { method: string }).method });
      return new MemoryUploader(name, t.kind);
    });
    await stage.preflight(planBuild(inv, ['x86_64', 'aarch64'], BUILD), new AbortController().signal);
    expect(made).toEqual([
      { name: 'aws-us-east-1', method: 'ebs-direct' },
      { name: 'aws-us-east-1', method: 's3-import' },
    ]);
  });
});
