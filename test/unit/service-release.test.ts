// `farm serve`'s lifecycle surface with the targets stood in: GET /api/images (channel, current
// mark), POST /api/builds/<id>/release behind the API token (refused before the body is read,
// nothing changed), the page's release button and channel table.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RemoteImage, ReleaseChange } from '../../uploaders/lifecycle.ts';
import type { Uploader } from '../../uploaders/uploader.ts';
import { releaseRequest } from '../../src/service/http.ts';
import { startStandIn, type StandIn } from '../support/serve-in-process.ts';

const TOKEN = 'release-token-for-tests';
const OLD = '20261101t000000z';
const NEW = '20261102t000000z';

const image = (buildId: string, over: Partial<RemoteImage> = {}): RemoteImage => ({
  target: 'glance', kind: 'openstack', location: 'RegionOne', imageId: `img-${buildId}`, imageName: `farm-${buildId}-s390x`,
  buildId, arch: 's390x', channel: 'candidate', current: false, permanent: false, createdAt: '2026-11-01T00:00:00Z', parts: [], ...over,
});

let held: RemoteImage[];
const marks: { id: string; change: ReleaseChange }[] = [];
let standIn: StandIn;

const fake = {
  async listImages() {
    return held.map((i) => ({ ...i }));
  },
  async markImage(img: RemoteImage, change: ReleaseChange) {
    marks.push({ id: img.imageId, change });
    held = held.map((i) => (i.imageId === img.imageId ? { ...i, channel: change.channel, current: change.current } : i));
  },
} as unknown as Uploader;

beforeAll(async () => {
  held = [image(OLD, { channel: 'released', current: true }), image(NEW)];
  standIn = await startStandIn({
    service: `  source: { watch: false }
  token_env: T_TOKEN
  arches: [s390x]`,
    extra: 'arches: { s390x: { types: [qcow2], targets: [{ name: glance, kind: openstack, cloud: lab, image_type: qcow2 }] } }\n',
    env: { T_TOKEN: TOKEN },
    uploaderFactory: () => fake,
  });
});

afterAll(async () => {
  await standIn?.stop();
});

const post = (path: string, init: RequestInit = {}) => fetch(standIn.base + path, { method: 'POST', ...init });

describe('farm serve: channels and release', () => {
  it('GET /api/images lists the targets\' images with channel and current mark', async () => {
    const r = await fetch(standIn.base + '/api/images');
    expect(r.status).toBe(200);
    const body = (await r.json()) as { images: RemoteImage[]; failures: string[] };
    expect(body.failures).toEqual([]);
    expect(body.images.map((i) => [i.buildId, i.channel, i.current]).sort()).toEqual([[OLD, 'released', true], [NEW, 'candidate', false]].sort());
  });

  it('refuses a release without the token, or with a wrong one, and changes nothing', async () => {
    const none = await post(`/api/builds/${NEW}/release`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/Bearer/);
    const wrong = await post(`/api/builds/${NEW}/release`, { headers: { authorization: 'Bearer nope' }, body: '{}' });
    expect(wrong.status).toBe(403);
    const get = await fetch(`${standIn.base}/api/builds/${NEW}/release`);
    expect(get.status).toBe(405);
    expect(marks).toEqual([]);
  });

  it('refuses a body it does not understand and an unknown build, changing nothing', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await post(`/api/builds/${NEW}/release`, { headers: auth, body: '{"force":true}' })).status).toBe(400);
    expect((await post(`/api/builds/${NEW}/release`, { headers: auth, body: 'not json' })).status).toBe(400);
    expect((await post('/api/builds/nonsense/release', { headers: auth })).status).toBe(404);
    const missing = await post('/api/builds/20201212t000000z/release', { headers: auth });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: string }).error).toMatch(/no images of build 20201212t000000z/);
    expect(marks).toEqual([]);
  });

  it('releases with the token, like `farm release`: new current first, the old one unmarked', async () => {
    const r = await post(`/api/builds/${NEW}/release`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(r.status).toBe(200);
    const out = (await r.json()) as { build: string; released: RemoteImage[]; unmarked: RemoteImage[]; failures: string[] };
    expect(out.build).toBe(NEW);
    expect(out.released.map((i) => [i.imageId, i.channel, i.current])).toEqual([[`img-${NEW}`, 'released', true]]);
    expect(out.unmarked.map((i) => i.imageId)).toEqual([`img-${OLD}`]);
    expect(marks.map((m) => [m.id, m.change.current])).toEqual([[`img-${NEW}`, true], [`img-${OLD}`, false]]);
    // The listing is refreshed after a release.
    const after = (await (await fetch(standIn.base + '/api/images')).json()) as { images: RemoteImage[] };
    expect(after.images.find((i) => i.buildId === NEW)).toMatchObject({ channel: 'released', current: true });
    expect(standIn.log()).toMatch(new RegExp(`release ${NEW} \\(POST /api/builds/${NEW}/release, .*\\): released 1 image\\(s\\), unmarked 1`));
  });

  it('reads the arches of a release request', () => {
    expect(releaseRequest(Buffer.from(''))).toEqual({});
    expect(releaseRequest(Buffer.from('{"arches":"s390x,x86_64"}'))).toEqual({ arches: ['s390x', 'x86_64'] });
    expect(releaseRequest(Buffer.from('{"arches":"all"}'))).toEqual({});
    expect(() => releaseRequest(Buffer.from('[]'))).toThrow(/JSON object/);
    expect(() => releaseRequest(Buffer.from('{"arches":"sparc"}'))).toThrow();
  });

  it('is asked again once a build finishes (its images are new)', async () => {
    const before = (await (await fetch(standIn.base + '/api/images')).json()) as { images: RemoteImage[] };
    held = [...held, image('20261103t000000z')];
    standIn.release();
    const r = await post('/api/builds', { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(r.status).toBe(202);
    await expect.poll(async () => ((await (await fetch(standIn.base + '/api/images')).json()) as { images: RemoteImage[] }).images.length, { timeout: 10_000 }).toBe(before.images.length + 1);
  });
});
