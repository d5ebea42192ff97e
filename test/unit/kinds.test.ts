// The target kinds behind the registry: each one's folder says everything about it, and the
// coordinator reaches it only through KINDS (src/targets.ts).

import { describe, expect, it } from 'vitest';
import { ARCHES } from '../../src/core/arch.ts';
import { IMAGE_TYPES } from '../../src/core/image-types.ts';
import { KINDS, KIND_NAMES, createUploader, kindFor, kindOf, targetSchema, type Target } from '../../src/targets.ts';
import { inventoryJsonSchema } from '../../src/inventory/json-schema.ts';
import { unionOptions } from '../../src/inventory/zod-walk.ts';
import { lazyUploader, nameRuleProblems, type KindCheckContext, type TargetKind } from '../../uploaders/kind.ts';
import type { HalfMade, Uploader } from '../../uploaders/uploader.ts';
import type { Artifact } from '../../src/core/artifact.ts';

const KEY = `SHA256:${'A'.repeat(43)}`;

/** The smallest target each kind's schema takes. */
const SAMPLES: Record<string, unknown> = {
  aws: { kind: 'aws', region: 'us-east-1' },
  ibmcloud: { kind: 'ibmcloud', regions: ['us-east'], resource_group: 'rg', operating_system: 'red-9-amd64-byol', cos: { bucket: 'b', region: 'us-east' } },
  libvirt: { kind: 'libvirt', hypervisors: [{ uri: 'qemu+ssh://root@hv/system', arch: 'x86_64', host_key: KEY }] },
  openstack: { kind: 'openstack' },
  azure: { kind: 'azure', subscription_id: 'fa7b1ab0-0000-4000-8000-000000000002', resource_group: 'rg', location: 'eastus', storage_account: 'farmlab' },
};

describe('the registry', () => {
  it('composes every kind, once, into the target schema', () => {
    expect(new Set(KIND_NAMES).size).toBe(KINDS.length);
    expect(Object.keys(unionOptions(targetSchema)).sort()).toEqual([...KIND_NAMES].sort());
    const variants = JSON.stringify(inventoryJsonSchema());
    for (const k of KIND_NAMES) expect(variants).toContain(`"const":"${k}"`);
  });

  it.each(KINDS.map((k): [string, TargetKind] => [k.kind, k]))('%s: a strict schema, its arches, its image type, an uploader of its name', (name, kind) => {
    const sample = SAMPLES[name];
    expect(sample, `add a sample target for ${name}`).toBeDefined();
    const target = kind.schema.parse(sample) as Target;
    expect(target.kind).toBe(name);
    expect(kind.schema.safeParse({ ...(sample as object), no_such_key: 1 }).success).toBe(false);
    expect(kind.arches.length).toBeGreaterThan(0);
    for (const a of kind.arches) expect(ARCHES).toContain(a);
    expect(IMAGE_TYPES).toContain(kind.imageType(target));
    expect(kindOf(name)).toBe(kind);
    expect(kindFor(target)).toBe(kind);
    const ctx: KindCheckContext = { arch: kind.arches[0]!, names: [], env: {} };
    expect(kind.check(target, ctx)).toEqual([]);
    const up = createUploader(target, `${name}-test`, {});
    expect(up.name).toBe(`${name}-test`);
    expect(up.kind).toBe(name);
  });

  it('an unknown kind has no entry', () => {
    expect(kindOf('gce')).toBeUndefined();
    expect(() => kindFor({ kind: 'gce' } as never)).toThrow(/no target kind 'gce'/);
  });
});

describe('lazyUploader', () => {
  const signal = new AbortController().signal;
  const artifact = {} as Artifact;

  it('loads the uploader on first use, once, and hands every call to it', async () => {
    const calls: string[] = [];
    let loads = 0;
    const real: Uploader = {
      name: 'x',
      kind: 'k',
      preflight: async () => void calls.push('preflight'),
      find: async (n) => (calls.push(`find ${n}`), []),
      upload: async (_a, n) => (calls.push(`upload ${n}`), []),
      removeHalfMade: async (objects) => objects.map((object) => ({ object, outcome: 'gone' as const })),
    };
    const up = lazyUploader('x', 'k', async () => (loads++, real));
    expect(loads).toBe(0);
    await up.preflight(signal);
    await up.find('img', artifact, signal);
    await up.upload(artifact, 'img', { signal, log: () => {}, tags: {} });
    const half = { kind: 'k-object', location: 'here', name: 'img', attempt: 'a' } satisfies HalfMade;
    expect(await up.removeHalfMade!([half], signal)).toEqual([{ object: half, outcome: 'gone' }]);
    expect(loads).toBe(1);
    expect(calls).toEqual(['preflight', 'find img', 'upload img']);
  });

  it('a create that fails fails the first call; an uploader without removeHalfMade leaves each object with an error', async () => {
    const broken = lazyUploader('x', 'k', async () => {
      throw new Error('no credentials');
    });
    await expect(broken.preflight(signal)).rejects.toThrow('no credentials');
    const plain = lazyUploader('x', 'k', async () => ({ name: 'x', kind: 'k', preflight: async () => {}, find: async () => [], upload: async () => [] }));
    const half = { kind: 'k-object', location: 'here', name: 'img', attempt: 'a' };
    expect(await plain.removeHalfMade!([half], signal)).toEqual([{ object: half, error: 'the k uploader cannot remove it; remove it by hand' }]);
  });
});

describe('nameRuleProblems', () => {
  const rule = { what: 'Cloud', problem: (n: string) => (n.includes('_') ? `'${n}' has '_'` : undefined), allowed: 'no underscores' };

  it('reports the first refused name at the template it comes from', () => {
    const names = [
      { arch: 'x86_64' as const, imageName: 'farm-1', buildId: '20261231t235959z' },
      { arch: 'x86_64' as const, imageName: 'farm_2', buildId: '20261231t235959z-99' },
    ];
    const own = nameRuleProblems(rule, { arch: 'x86_64', names, naming: { template: '{name}', own: true }, env: {} });
    expect(own).toEqual([
      {
        path: ['naming'],
        message: "Cloud name refused: this target's naming '{name}' gives 'farm_2' for x86_64, for a build that is the 99th to start in its second (build id 20261231t235959z-99): 'farm_2' has '_'",
        fix: 'change naming to a template whose names are no underscores',
      },
    ]);
    const inherited = nameRuleProblems(rule, { arch: 'x86_64', names, naming: { template: '{name}', own: false }, env: {} });
    expect(inherited[0]!.path).toEqual([]);
    expect(inherited[0]!.fix).toMatch(/^set naming: on this target/);
    expect(nameRuleProblems(rule, { arch: 'x86_64', names: names.slice(0, 1), env: {} })).toEqual([]);
  });
});
