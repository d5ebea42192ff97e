// publish_image: the manifest list document the coordinator pushes, the repository rule, and the
// inventory's source.publish (refused beside an image source, a tag refused).

import { afterAll, describe, expect, it } from 'vitest';
import { childTag, DOCKER_LIST, DOCKER_MANIFEST, indexDocument, OCI_INDEX, OCI_MANIFEST, publishRepo } from '../../src/registry/publish.ts';
import { digestOf, parseManifest } from '../../src/registry/manifest-list.ts';
import { loads, only, problemsOf, removeCases, withSource } from './inventory-support.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;

describe('indexDocument', () => {
  it('an OCI index of OCI manifests, in the farm\'s arch order, with each platform', () => {
    const doc = indexDocument([
      { arch: 's390x', digest: d('b'), mediaType: OCI_MANIFEST, size: 500 },
      { arch: 'aarch64', digest: d('a'), mediaType: OCI_MANIFEST, size: 400 },
      { arch: 'x86_64', digest: d('c'), mediaType: OCI_MANIFEST, size: 600 },
    ]);
    expect(doc.mediaType).toBe(OCI_INDEX);
    const json = JSON.parse(doc.body.toString()) as { schemaVersion: number; mediaType: string; manifests: Array<Record<string, unknown>> };
    expect(json.schemaVersion).toBe(2);
    expect(json.mediaType).toBe(OCI_INDEX);
    expect(json.manifests).toEqual([
      { mediaType: OCI_MANIFEST, digest: d('c'), size: 600, platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: OCI_MANIFEST, digest: d('a'), size: 400, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
      { mediaType: OCI_MANIFEST, digest: d('b'), size: 500, platform: { architecture: 's390x', os: 'linux' } },
    ]);
    // The farm's own list reader reads it back as the same arches.
    const parsed = parseManifest(doc.body, OCI_INDEX);
    expect(parsed.kind === 'list' && parsed.entries.map((e) => `${e.arch} ${e.digest}`)).toEqual([`x86_64 ${d('c')}`, `aarch64 ${d('a')}`, `s390x ${d('b')}`]);
  });

  it('the same children in any order give the same digest', () => {
    const a = { arch: 'x86_64' as const, digest: d('c'), mediaType: OCI_MANIFEST, size: 1 };
    const b = { arch: 'ppc64le' as const, digest: d('e'), mediaType: OCI_MANIFEST, size: 2 };
    expect(digestOf(indexDocument([a, b]).body)).toBe(digestOf(indexDocument([b, a]).body));
  });

  it('a Docker manifest list of Docker schema 2 manifests; mixed families and none refused', () => {
    const doc = indexDocument([{ arch: 'ppc64le', digest: d('e'), mediaType: DOCKER_MANIFEST, size: 9 }]);
    expect(doc.mediaType).toBe(DOCKER_LIST);
    expect((JSON.parse(doc.body.toString()) as { manifests: Array<{ platform: unknown }> }).manifests[0]!.platform).toEqual({ architecture: 'ppc64le', os: 'linux' });
    expect(() =>
      indexDocument([
        { arch: 'ppc64le', digest: d('e'), mediaType: DOCKER_MANIFEST, size: 9 },
        { arch: 'x86_64', digest: d('c'), mediaType: OCI_MANIFEST, size: 9 },
      ]),
    ).toThrow(/either OCI or Docker schema 2/);
    expect(() => indexDocument([])).toThrow(/no arch image/);
  });
});

describe('publish repository', () => {
  it('takes a repository only; the farm chooses the tags', () => {
    expect(publishRepo('10.231.0.30:5000/farm-lab/published')).toMatchObject({ registry: '10.231.0.30:5000', repository: 'farm-lab/published' });
    expect(() => publishRepo('quay.io/a/b:1')).toThrow(/names a tag or digest/);
    expect(() => publishRepo(`quay.io/a/b@${d('a')}`)).toThrow(/names a tag or digest/);
    expect(childTag('20261206t220000z', 'aarch64')).toBe('20261206t220000z-aarch64');
  });
});

describe('source.publish in the inventory', () => {
  afterAll(removeCases);
  const inv = withSource;

  it('defaults: latest false, partial false, tls_verify true', async () => {
    const loaded = await loads(inv('{ containerfile: Containerfile, publish: { image: "quay.io/a/b" } }'));
    expect(loaded.inventory.source.publish).toEqual({ image: 'quay.io/a/b', latest: false, partial: false, tls_verify: true });
  });

  it('refuses it beside an image source, and a tag in the repository', async () => {
    const p = only(await problemsOf(inv('{ image: "quay.io/a/b:1", publish: { image: "quay.io/a/c" } }')), 'source.publish');
    expect(p).toMatchObject({ line: 2 });
    expect(p.message).toContain('beside source.image');
    expect(p.fix).toContain('remove source.publish');
    const t = only(await problemsOf(inv('{ containerfile: Containerfile, publish: { image: "quay.io/a/c:v1" } }')), 'source.publish.image');
    expect(t.message).toContain('names a tag or digest');
    expect(t.fix).toContain('quay.io/a/c');
  });

  it('refuses an unknown key in it', async () => {
    const p = only(await problemsOf(inv('{ containerfile: Containerfile, publish: { image: "quay.io/a/c", lates: true } }')), 'source.publish.lates');
    expect(p.fix).toBeTruthy();
  });
});
