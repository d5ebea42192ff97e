// An image source's pieces without a registry: references, manifest lists (OCI index and Docker
// list), the containers auth file, WWW-Authenticate challenges, and the inventory's one-source rule.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redact } from '../../src/core/redact.ts';
import { authFileCandidates, credentialsIn, readCredentials } from '../../src/registry/auth-file.ts';
import { parseChallenge, registryAnswer } from '../../src/registry/client.ts';
import { digestOf, parseManifest } from '../../src/registry/manifest-list.ts';
import { parseImageRef, pinned } from '../../src/registry/ref.ts';
import { checkArches, pullRefFor, type ResolvedImage } from '../../src/registry/resolve.ts';
import { loads, only, problemsOf, removeCases, withSource } from './inventory-support.ts';

const D = (c: string) => `sha256:${c.repeat(64)}`;

describe('image references', () => {
  it('parse registry, repository, tag and digest as containers tools do', () => {
    expect(parseImageRef('10.231.0.30:5000/farm-lab/base:latest')).toMatchObject({ registry: '10.231.0.30:5000', apiHost: '10.231.0.30:5000', repository: 'farm-lab/base', tag: 'latest' });
    expect(parseImageRef('quay.io/fedora/fedora-bootc')).toMatchObject({ registry: 'quay.io', repository: 'fedora/fedora-bootc', tag: 'latest' });
    expect(parseImageRef('fedora:42')).toMatchObject({ registry: 'docker.io', apiHost: 'registry-1.docker.io', repository: 'library/fedora', tag: '42' });
    expect(parseImageRef('localhost/x/y@' + D('a'))).toMatchObject({ registry: 'localhost', repository: 'x/y', digest: D('a'), tag: undefined });
    expect(pinned(parseImageRef('quay.io/a/b:1'), D('b'))).toBe(`quay.io/a/b@${D('b')}`);
  });

  it('refuse what is not a reference, saying what is wrong', () => {
    expect(() => parseImageRef('Quay.io/Fedora/Bootc')).toThrow(/lower-case path components/);
    expect(() => parseImageRef('quay.io/a/b@sha256:12')).toThrow(/64 hex digits/);
    expect(() => parseImageRef('quay.io/a/b:bad tag')).toThrow(/not a valid tag/);
  });
});

describe('manifest lists', () => {
  const index = (manifests: unknown[], mediaType = 'application/vnd.oci.image.index.v1+json') => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests }));

  it('give each linux arch its manifest digest, in the farm arch names, leaving attestations out', () => {
    const body = index([
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('1'), platform: { architecture: 's390x', os: 'linux' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('2'), platform: { architecture: 'amd64', os: 'linux' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('3'), platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('4'), platform: { architecture: 'unknown', os: 'unknown' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('5'), platform: { architecture: 'arm', os: 'linux', variant: 'v7' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D('6'), platform: { architecture: 'amd64', os: 'windows' } },
    ]);
    const parsed = parseManifest(body, 'application/vnd.oci.image.index.v1+json');
    expect(parsed).toEqual({
      kind: 'list',
      entries: [
        { arch: 'x86_64', digest: D('2'), mediaType: 'application/vnd.oci.image.manifest.v1+json' },
        { arch: 'aarch64', digest: D('3'), mediaType: 'application/vnd.oci.image.manifest.v1+json' },
        { arch: 's390x', digest: D('1'), mediaType: 'application/vnd.oci.image.manifest.v1+json' },
      ],
      other: ['linux/arm/v7', 'windows/amd64'],
    });
    expect(digestOf(body)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('read a Docker manifest list by its Content-Type, and a single image manifest as its config', () => {
    const docker = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ digest: D('7'), platform: { architecture: 'ppc64le', os: 'linux' } }] }));
    expect(parseManifest(docker, 'application/vnd.docker.distribution.manifest.list.v2+json')).toMatchObject({ kind: 'list', entries: [{ arch: 'ppc64le', digest: D('7') }] });
    const single = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: D('8') }, layers: [] }));
    expect(parseManifest(single, undefined)).toEqual({ kind: 'image', configDigest: D('8') });
    expect(() => parseManifest(Buffer.from('{"mediaType":"text/plain"}'), undefined)).toThrow(/unsupported manifest type 'text\/plain'/);
    expect(() => parseManifest(Buffer.from('<html>'), undefined)).toThrow(/not JSON/);
  });

  it('refuse an arch the list lacks, naming the ones it carries, and pin the others by digest', () => {
    const img: ResolvedImage = { image: 'r.example/a/b:1', ref: parseImageRef('r.example/a/b:1'), digest: D('9'), arches: { x86_64: D('1'), s390x: D('2') }, tlsVerify: true };
    expect(() => checkArches(img, ['x86_64', 'ppc64le', 'aarch64'])).toThrow('r.example/a/b:1 (sha256:999999999999) carries no image for ppc64le, aarch64: it carries x86_64, s390x');
    expect(() => checkArches(img, ['s390x'])).not.toThrow();
    expect(pullRefFor(img, 's390x')).toBe(`r.example/a/b@${D('2')}`);
  });
});

describe('the containers auth file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'farm-auth-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is looked for where podman looks, REGISTRY_AUTH_FILE first, Docker last', () => {
    expect(authFileCandidates({ HOME: '/h', REGISTRY_AUTH_FILE: '/a.json', XDG_RUNTIME_DIR: '/run/user/1' })).toEqual([
      '/a.json',
      '/run/user/1/containers/auth.json',
      '/h/.config/containers/auth.json',
      '/h/.docker/config.json',
    ]);
  });

  it('gives the most specific entry: a namespace key over the registry, with or without a scheme', () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const json = { auths: { 'https://reg.example:5000': { auth: b64('all:pw-all') }, 'reg.example:5000/team': { auth: b64('team:pw:with:colons') }, 'https://index.docker.io/v1/': { auth: b64('hub:pw-hub') } } };
    expect(credentialsIn(json, 'f', 'reg.example:5000', 'team/app')).toEqual({ username: 'team', password: 'pw:with:colons', file: 'f' });
    expect(credentialsIn(json, 'f', 'reg.example:5000', 'other/app')).toMatchObject({ username: 'all', password: 'pw-all' });
    expect(credentialsIn(json, 'f', 'docker.io', 'library/fedora')).toMatchObject({ username: 'hub' });
    expect(credentialsIn(json, 'f', 'reg.example', 'team/app')).toBeUndefined();
    expect(credentialsIn({ auths: { 'q.io': { username: 'u', password: 'p' } } }, 'f', 'q.io', 'x')).toMatchObject({ username: 'u', password: 'p' });
  });

  it('reads the first file that has the registry, registers the password with redact(), and names a damaged file', async () => {
    const first = join(dir, 'auth.json');
    const docker = join(dir, 'home', '.docker');
    await writeFile(first, JSON.stringify({ auths: { 'other.example': { auth: Buffer.from('o:o-secret-1').toString('base64') } } }));
    await import('node:fs/promises').then((fs) => fs.mkdir(docker, { recursive: true }));
    const password = 'docker-only-password-77';
    await writeFile(join(docker, 'config.json'), JSON.stringify({ auths: { 'reg.example': { auth: Buffer.from(`d:${password}`).toString('base64') } } }));
    const env = { HOME: join(dir, 'home'), REGISTRY_AUTH_FILE: first };
    const creds = await readCredentials('reg.example', 'a/b', env);
    expect(creds).toEqual({ username: 'd', password, file: join(docker, 'config.json') });
    expect(redact(`pull with ${password} and ${Buffer.from(`d:${password}`).toString('base64')}`)).not.toContain(password);
    expect(await readCredentials('none.example', 'a/b', env)).toBeUndefined();
    await writeFile(first, '{ not json');
    await expect(readCredentials('reg.example', 'a/b', env)).rejects.toThrow(`the auth file ${first} is not valid JSON`);
  });
});

describe('registry answers', () => {
  it('parse Bearer and Basic challenges, and quote the registry’s errors', () => {
    expect(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
    });
    expect(parseChallenge('Basic realm="farm-lab-registry"')).toEqual({ scheme: 'basic', params: { realm: 'farm-lab-registry' } });
    const body = Buffer.from(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { Tag: 'x' } }] }));
    expect(registryAnswer({ status: 404, headers: {}, body })).toBe('404 MANIFEST_UNKNOWN: manifest unknown');
  });
});

describe('the inventory takes one source', () => {
  afterAll(removeCases);
  const inv = withSource;

  it('an image, with tls_verify defaulting to true', async () => {
    const loaded = await loads(inv('{ image: "quay.io/a/b:1" }'));
    expect(loaded.inventory.source.image).toBe('quay.io/a/b:1');
    expect(loaded.inventory.source.tls_verify).toBeUndefined();
  });

  it('refuses both, naming the field and the fix', async () => {
    const p = only(await problemsOf(inv('{ image: "quay.io/a/b:1", containerfile: Containerfile }')), 'source.containerfile');
    expect(p).toMatchObject({ line: 2, message: 'source.containerfile is set beside source.image: the inventory takes one source or the other, never both' });
    expect(p.fix).toContain('keep source.image');
    expect(only(await problemsOf(inv('{ image: "quay.io/a/b:1", build_args: { A: b } }')), 'source.build_args').fix).toContain('applies to a Containerfile source only');
  });

  it('refuses neither, and tls_verify beside a Containerfile', async () => {
    const p = only(await problemsOf(inv('{ context: . }')), 'source.containerfile');
    expect(p.message).toBe('the source names neither a Containerfile nor an image');
    expect(p.fix).toContain('source.image: REGISTRY/REPO:TAG');
    expect(only(await problemsOf(inv('{ containerfile: Containerfile, tls_verify: false }')), 'source.tls_verify').message).toBe('tls_verify applies to an image source only');
  });
});
