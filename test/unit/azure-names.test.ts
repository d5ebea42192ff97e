import { describe, expect, it } from 'vitest';
import { galleryVersion, imageNameProblem, stagingBlobName, versionNameProblem } from '../../uploaders/azure/names.ts';
import { azureTargetSchema } from '../../uploaders/azure/schema.ts';
import { azureArchitecture } from '../../uploaders/azure/arch.ts';

describe('Azure image names', () => {
  it('takes 1-80 of [A-Za-z0-9._-], alphanumeric first, alphanumeric or _ last', () => {
    for (const ok of ['a', 'farm-lab-20261204-183000-x86_64', 'A.b_c-d', `a${'x'.repeat(78)}_`, '9']) expect(imageNameProblem(ok)).toBeUndefined();
  });

  it('says why a name is refused', () => {
    expect(imageNameProblem('')).toMatch(/empty/);
    expect(imageNameProblem('a'.repeat(81))).toMatch(/81 characters long; Azure image names have at most 80/);
    expect(imageNameProblem('-abc')).toMatch(/starts with '-'/);
    expect(imageNameProblem('_abc')).toMatch(/starts with '_'/);
    expect(imageNameProblem('abc.')).toMatch(/ends with '.'/);
    expect(imageNameProblem('abc-')).toMatch(/ends with '-'/);
    expect(imageNameProblem('a b/c')).toMatch(/contains " ", "\/"/);
  });

  it('names gallery versions Major.Minor.Patch from the build time, in int32 parts', () => {
    expect(galleryVersion('2026-12-04T18:30:05Z')).toBe('20261204.183005.0');
    expect(galleryVersion('2026-01-02T00:00:07Z', 3)).toBe('20260102.7.3');
    expect(versionNameProblem(galleryVersion('2026-12-04T23:59:59Z', 20))).toBeUndefined();
    expect(versionNameProblem('1.2')).toMatch(/Major\.Minor\.Patch/);
    expect(versionNameProblem('1.2.2147483648')).toMatch(/32-bit/);
    expect(() => galleryVersion('yesterday')).toThrow(/not a time/);
    expect(stagingBlobName('img', '1a2b')).toBe('img.1a2b.vhd');
  });
});

describe('azure target schema', () => {
  const base = { kind: 'azure', subscription_id: 'fa7b1ab0-0000-4000-8000-000000000002', resource_group: 'farm-lab', location: 'eastus', storage_account: 'farmlab' };

  it('fills defaults and takes a gallery', () => {
    expect(azureTargetSchema.parse(base)).toEqual({ ...base, container: 'farm-staging', tags: {} });
    const g = azureTargetSchema.parse({ ...base, gallery: { name: 'farm_lab_gallery', image: 'farm-lab-arm64' } });
    expect(g.gallery).toEqual({ name: 'farm_lab_gallery', image: 'farm-lab-arm64', target_regions: [] });
  });

  it('is strict and checks Azure names', () => {
    const issues = (v: unknown) => azureTargetSchema.safeParse(v).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];
    expect(issues({ ...base, storage_acount: 'x' })).toEqual([expect.stringMatching(/Unrecognized key/)]);
    expect(issues({ ...base, subscription_id: 'abc' })).toEqual(['subscription_id: an Azure subscription id is a GUID']);
    expect(issues({ ...base, storage_account: 'Farm-Lab' })).toEqual(['storage_account: a storage account name is 3-24 lower-case letters and digits']);
    expect(issues({ ...base, container: 'a--b' })[0]).toMatch(/^container: /);
    expect(issues({ ...base, location: 'East US' })[0]).toMatch(/^location: /);
    expect(issues({ ...base, arm_endpoint: 'http://127.0.0.1:19011' })).toEqual(['arm_endpoint: use an https:// URL (Azure SDKs send bearer tokens over TLS only)']);
    expect(issues({ ...base, gallery: { name: 'g', image: 'i', extra: 1 } })[0]).toMatch(/^gallery: Unrecognized key/);
  });
});

describe('azureArchitecture', () => {
  it('maps the build arch, and sends Arm64 to galleries only', () => {
    expect(azureArchitecture('x86_64', false)).toBe('x64');
    expect(azureArchitecture('aarch64', true)).toBe('Arm64');
    expect(() => azureArchitecture('aarch64', false)).toThrow(/Compute Gallery images only/);
    expect(() => azureArchitecture('s390x', true)).toThrow(/no s390x images/);
  });
});

describe('azure kind checks', async () => {
  const { azure } = await import('../../uploaders/azure/kind.ts');
  const target = azureTargetSchema.parse({ kind: 'azure', subscription_id: 'fa7b1ab0-0000-4000-8000-000000000002', resource_group: 'farm-lab', location: 'eastus', storage_account: 'farmlab' });
  const ctx = (arch: 'x86_64' | 'aarch64', imageName: string, own = false) => ({ arch, names: [{ arch, imageName }], naming: { template: '{name}-x', own }, env: {} });

  it('wants a gallery for aarch64', () => {
    expect(azure.check(target, ctx('aarch64', 'farm-1'))).toEqual([
      expect.objectContaining({ path: ['gallery'], message: expect.stringMatching(/Compute Gallery images only/) }),
    ]);
    expect(azure.check({ ...target, gallery: { name: 'g', image: 'i', target_regions: [] } }, ctx('aarch64', 'farm-1'))).toEqual([]);
  });

  it('checks managed image names, and gallery image names only as tags', () => {
    expect(azure.check(target, ctx('x86_64', 'farm-1.', true))).toEqual([
      expect.objectContaining({ path: ['naming'], message: expect.stringMatching(/Azure managed image name refused: .* ends with '\.'/) }),
    ]);
    expect(azure.check({ ...target, gallery: { name: 'g', image: 'i', target_regions: [] } }, ctx('x86_64', 'farm-1.'))).toEqual([]);
    expect(azure.imageType(target)).toBe('vhd');
    expect(azure.arches).toEqual(['x86_64', 'aarch64']);
  });

  it('checks tags as Azure takes them', () => {
    expect(azure.check({ ...target, tags: { 'a/b': 'x', ok: 'v'.repeat(257) } }, ctx('x86_64', 'farm-1')).map((p) => p.path)).toEqual([
      ['tags', 'a/b'],
      ['tags', 'ok'],
    ]);
  });
});
