import { describe, expect, it } from 'vitest';
import { imageTypesFor, typeForTarget } from '../../src/plan/image-types.ts';
import { inventoryArches, planBuild } from '../../src/plan/plan.ts';
import { inventorySchema, type LoadedInventory } from '../../src/inventory/schema.ts';

function loaded(raw: unknown): LoadedInventory {
  return { file: '/inv/farm.yaml', dir: '/inv', inventory: inventorySchema.parse(raw) };
}

const worker = (name: string, arch: string, extra: object = {}) => ({ name, host: `${name}.example`, arch, ...extra });

describe('image types', () => {
  it('follow from targets: AWS needs ami, IBM qcow2, libvirt/OpenStack as configured', () => {
    expect(typeForTarget({ kind: 'aws', region: 'us-east-1' } as never)).toBe('ami');
    expect(typeForTarget({ kind: 'ibmcloud' } as never)).toBe('qcow2');
    expect(typeForTarget({ kind: 'libvirt', image_type: 'raw' } as never)).toBe('raw');
    expect(typeForTarget({ kind: 'openstack', image_type: 'qcow2' } as never)).toBe('qcow2');
    expect(imageTypesFor({ targets: [{ kind: 'aws' } as never, { kind: 'libvirt', image_type: 'qcow2' } as never, { kind: 'aws' } as never] })).toEqual(['ami', 'qcow2']);
  });
  it('an explicit list overrides targets; no targets means qcow2', () => {
    expect(imageTypesFor({ types: ['raw'], targets: [{ kind: 'aws' } as never] })).toEqual(['raw']);
    expect(imageTypesFor(undefined)).toEqual(['qcow2']);
    expect(imageTypesFor({ targets: [] })).toEqual(['qcow2']);
  });
});

describe('planBuild', () => {
  const inv = loaded({
    version: 1,
    source: { containerfile: 'Containerfile' },
    naming: { name: 'copr-builder' },
    workers: [worker('w-x86', 'x86_64'), worker('w-x86-b', 'x86_64'), worker('w-s390x', 's390x')],
    arches: { x86_64: { types: ['ami', 'raw'] }, ppc64le: { types: ['raw'] } },
  });

  it('plans each requested arch with its workers, types, runs and image name', () => {
    const plan = planBuild(inv, ['x86_64', 's390x'], '20261121t101500z');
    expect(plan.unbuildable).toEqual([]);
    const x = plan.arches.find((a) => a.arch === 'x86_64')!;
    expect(x.workers.map((w) => w.name)).toEqual(['w-x86', 'w-x86-b']);
    expect(x.runs).toEqual([['ami'], ['raw']]);
    expect(x.imageName).toBe('copr-builder-20261121-101500-x86_64');
    expect(plan.arches.find((a) => a.arch === 's390x')!.types).toEqual(['qcow2']);
  });

  it('an arch without workers fails clearly while the others are planned', () => {
    const plan = planBuild(inv, ['x86_64', 'ppc64le'], '20261121t101500z');
    expect(plan.arches.map((a) => a.arch)).toEqual(['x86_64']);
    expect(plan.unbuildable).toEqual([{ arch: 'ppc64le', reason: expect.stringMatching(/no worker of arch ppc64le in \/inv\/farm.yaml.*arch: ppc64le/) }]);
  });

  it('`all` means the arches the inventory has workers or sections for', () => {
    expect(inventoryArches(inv)).toEqual(['x86_64', 'ppc64le', 's390x']);
  });
});
