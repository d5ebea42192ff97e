// `farm serve` and the image lifecycle on the lab: a real build (s390x) uploaded to the lab's real
// Glance as a candidate; an unauthenticated release is refused and changes nothing in Glance; a
// release over the API (POST /api/builds/<id>/release) shares it and marks it released and current.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RemoteImage } from '../../uploaders/lifecycle.ts';
import { ensureLab, labInventoryVariant } from '../support/lab.ts';
import { ensureOpenStack, type LabOpenStack } from '../support/openstack.ts';
import { killServes, startServe, type ServeProcess } from '../support/serve.ts';

const run = promisify(execFile);
const TOKEN = `tok-${randomBytes(12).toString('hex')}`;

let openstack: LabOpenStack;
let service: ServeProcess;
const builds: string[] = [];
const created = new Set<string>();

async function glance(id: string): Promise<{ farm_channel?: string; farm_current?: string; visibility?: string }> {
  const { stdout } = await run('openstack', ['--os-cloud', 'lab', 'image', 'show', '-f', 'json', id], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, OS_CLIENT_CONFIG_FILE: openstack.cloudsYaml },
    maxBuffer: 16 << 20,
  });
  const shown = JSON.parse(stdout) as { properties?: Record<string, string>; visibility?: string } & Record<string, unknown>;
  // The client prints extra properties under "properties" (or, in older versions, at the top).
  return { ...(shown as Record<string, string>), ...(shown.properties ?? {}), ...(shown.visibility ? { visibility: shown.visibility } : {}) };
}

async function images(): Promise<RemoteImage[]> {
  const r = await fetch(`${service.url}/api/images`);
  expect(r.status).toBe(200);
  const body = (await r.json()) as { images: RemoteImage[]; failures: string[] };
  expect(body.failures).toEqual([]);
  for (const i of body.images) created.add(i.imageId);
  return body.images;
}

/** Queues a build over the API and waits (bounded) for it to finish; returns its build id. */
async function build(): Promise<string> {
  const before = (await service.snapshot()).runs.length;
  const r = await fetch(`${service.url}/api/builds`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{"arches":"s390x"}' });
  expect(r.status).toBe(202);
  const deadline = Date.now() + 300_000;
  let snap = await service.snapshot();
  while (snap.runs.length <= before || snap.running || snap.pending) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for the build:\n${service.log()}`);
    await new Promise((res) => setTimeout(res, 500));
    snap = await service.snapshot();
  }
  const done = snap.runs[0]!;
  expect(done.status).toBe('succeeded');
  return done.build_id!;
}

beforeAll(async () => {
  await ensureLab();
  openstack = await ensureOpenStack();
  const variant = await labInventoryVariant((doc) => {
    doc.naming = { name: `farm-serve-rel-${randomBytes(3).toString('hex')}` };
    doc.arches = { s390x: { types: ['qcow2'], targets: [{ kind: 'openstack', cloud: 'lab', image_type: 'qcow2', visibility: 'shared' }] } };
    doc.service = { source: { watch: false }, debounce: '1s', arches: ['s390x'], token_env: 'FARM_IT_TOKEN' };
  });
  service = await startServe(variant.file, { FARM_IT_TOKEN: TOKEN, OS_CLIENT_CONFIG_FILE: openstack.cloudsYaml });
}, 120_000);

afterAll(async () => {
  await service?.stop('SIGTERM').catch(() => undefined);
  killServes();
  for (const id of created) await run('openstack', ['--os-cloud', 'lab', 'image', 'delete', id], { env: { PATH: process.env.PATH, HOME: process.env.HOME, OS_CLIENT_CONFIG_FILE: openstack?.cloudsYaml } }).catch(() => undefined);
});

describe('farm serve: release on the lab', () => {
  it('a new build is a candidate; a release without the token is refused and changes nothing', async () => {
    builds.push(await build());
    const [mine] = (await images()).filter((i) => i.buildId === builds[0]);
    expect(mine).toMatchObject({ channel: 'candidate', current: false, arch: 's390x' });
    const url = `${service.url}/api/builds/${builds[0]}/release`;
    expect((await fetch(url, { method: 'POST' })).status).toBe(401);
    expect((await fetch(url, { method: 'POST', headers: { authorization: 'Bearer not-the-token' } })).status).toBe(403);
    const seen = await glance(mine!.imageId);
    expect(seen.farm_channel).toBe('candidate');
    expect(seen.farm_current).toBeUndefined();
    expect(seen.visibility).toBe('private');
    expect(service.log()).not.toMatch(/released \d+ image/);
  }, 420_000);

  it('POST /api/builds/<id>/release with the token releases it in Glance and reports it', async () => {
    const r = await fetch(`${service.url}/api/builds/${builds[0]}/release`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    const out = (await r.json()) as { build: string; released: RemoteImage[]; unmarked: RemoteImage[]; failures: string[] };
    expect(r.status, JSON.stringify(out)).toBe(200);
    expect(out.failures).toEqual([]);
    expect(out.released).toHaveLength(1);
    expect(out.released[0]).toMatchObject({ buildId: builds[0], channel: 'released', current: true, target: 'openstack' });
    const seen = await glance(out.released[0]!.imageId);
    expect(seen.farm_channel).toBe('released');
    expect(seen.farm_current).toBe('true');
    expect(seen.visibility).toBe('shared'); // the target's sharing applies at release
    expect((await images()).find((i) => i.buildId === builds[0])).toMatchObject({ channel: 'released', current: true });
  }, 120_000);
});
