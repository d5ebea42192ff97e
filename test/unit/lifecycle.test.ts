// The coordinator's view of the targets' images (src/pipeline/lifecycle.ts) and the identity
// encodings of the kinds, without a cloud: stub uploaders answer the listings.

import { describe, expect, it } from 'vitest';
import { listRemote, removeAll } from '../../src/pipeline/lifecycle.ts';
import type { Target } from '../../src/inventory/schema.ts';
import { identityFromTags, identityTags, type RemoteImage } from '../../uploaders/lifecycle.ts';
import { identityUserTags } from '../../uploaders/ibmcloud/lifecycle.ts';
import type { Uploader } from '../../uploaders/uploader.ts';
import { inlineInventory } from '../support/inline-inventory.ts';

const id = { buildId: '20261206t120000z', arch: 'aarch64', name: 'Farm-Img', channel: 'candidate' as const, inventory: 'Copr' };

const image = (more: Partial<RemoteImage>): RemoteImage => ({
  target: 'aws-us-east-1', kind: 'aws', location: 'us-east-1', imageId: 'ami-1', imageName: 'n', buildId: id.buildId, arch: 'x86_64',
  channel: 'candidate', current: false, permanent: false, parts: [], ...more,
});

// Two targets of one name, one per arch, as the lab inventory has them (different settings).
const loaded = () =>
  inlineInventory({
    workers: [{ name: 'w', host: 'h', arch: 'x86_64' }],
    naming: { name: 'copr' },
    arches: {
      x86_64: { targets: [{ kind: 'aws', region: 'us-east-1', share_accounts: ['111122223333'] }] },
      aarch64: { targets: [{ kind: 'aws', region: 'us-east-1' }] },
    },
  });

function stub(target: Target, listing: RemoteImage[], removed: string[]): Uploader {
  return {
    name: 'aws-us-east-1',
    kind: target.kind,
    preflight: async () => {},
    find: async () => [],
    upload: async () => [],
    listImages: async (inventory) => (inventory === 'copr' ? listing : []),
    removeImage: async (i) => {
      removed.push(`${(target as { share_accounts?: string[] }).share_accounts?.length ? 'x86-target' : 'arm-target'} ${i.imageId}`);
      return [i.imageId];
    },
    markImage: async () => {},
    deprecateImage: async () => {},
  };
}

describe('the targets’ images', () => {
  it('lists each image once, through the target of its own arch, newest first', async () => {
    const both = [image({ imageId: 'ami-x', arch: 'x86_64', createdAt: '2026-12-01T00:00:00Z' }), image({ imageId: 'ami-a', arch: 'aarch64', createdAt: '2026-12-02T00:00:00Z' })];
    const removed: string[] = [];
    const list = await listRemote(loaded(), {}, (t) => stub(t, both, removed), AbortSignal.timeout(5000));
    expect(list.images.map((i) => i.imageId)).toEqual(['ami-a', 'ami-x']);
    await removeAll(list.images, AbortSignal.timeout(5000));
    // The aarch64 AMI goes through the aarch64 target, whose settings (no share_accounts) are its own.
    expect(removed.sort()).toEqual(['arm-target ami-a', 'x86-target ami-x']);
  });

  it('a target that cannot list is a failure, not an empty listing', async () => {
    const list = await listRemote(loaded(), { only: ['aws'] }, (t) => ({ ...stub(t, [], []), listImages: async () => Promise.reject(new Error('no credentials')) }), AbortSignal.timeout(5000));
    expect(list.images).toEqual([]);
    expect(list.failures).toEqual(['aws-us-east-1: no credentials']);
  });

  it('removes images before leftovers of the same target (an AMI before the snapshot it holds)', async () => {
    const order: string[] = [];
    const held = [image({ imageId: 'snap-1', leftover: true }), image({ imageId: 'ami-1' })].map((i) => ({
      ...i,
      via: { removeImage: async (x: RemoteImage) => (order.push(x.imageId), []) } as unknown as Uploader,
    }));
    await removeAll(held, AbortSignal.timeout(5000));
    expect(order).toEqual(['ami-1', 'snap-1']);
  });
});

describe('identity encodings', () => {
  it('AWS and Azure tags round-trip, and tags without the identity are not the farm’s', () => {
    expect(identityFromTags({ ...identityTags(id), 'farm:current': 'true' })).toEqual({ ...id, current: true, permanent: false });
    expect(identityFromTags({ Name: 'x', 'farm:build-id': id.buildId })).toBeUndefined();
  });

  it('IBM user tags are key:value, lowercase, one colon after the key', () => {
    expect(identityUserTags(id)).toEqual([
      'farm-build-id:20261206t120000z', 'farm-arch:aarch64', 'farm-name:farm-img', 'farm-channel:candidate', 'farm-inventory:copr',
    ]);
  });
});
