// `farm serve` on the lab: real builds (s390x, to keep time down) uploaded to the lab's real
// Glance, triggered over HTTP; refusals, coalescing, notifications, the status page in a real
// headless chromium, a restart, and SIGTERM in the middle of a build.

import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BuildState } from '../../src/records/state.ts';
import type { NotifyPayload } from '../../src/service/notify.ts';
import { farm, REPO } from '../support/cli.ts';
import { launchBrowser } from '../support/browser.ts';
import { ensureLab, labInventoryVariant } from '../support/lab.ts';
import { ensureOpenStack, type LabOpenStack } from '../support/openstack.ts';
import { killServes, startServe, type ServeProcess } from '../support/serve.ts';

const run = promisify(execFile);

const TOKEN = `tok-${randomBytes(12).toString('hex')}`;
const GH_SECRET = `gh-${randomBytes(12).toString('hex')}`;
const GL_TOKEN = `gl-${randomBytes(12).toString('hex')}`;
const SHOTS = join(REPO, 'test', '.tmp');

let openstack: LabOpenStack;
let variant: { file: string; dir: string };
let env: NodeJS.ProcessEnv;
let service: ServeProcess;
let receiver: Server;
let receiverUrl: string;
const received: NotifyPayload[] = [];
const createdImages = new Set<string>();

const sign = (body: string, secret = GH_SECRET) => 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
const pushBody = JSON.stringify({ ref: 'refs/heads/main', after: 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00', repository: { full_name: 'farm/os' } });

async function builtIds(): Promise<string[]> {
  return (await readdir(join(variant.dir, 'builds')).catch(() => [])).filter((n) => !n.startsWith('.')).sort();
}

async function osc(args: string[]): Promise<string> {
  const { stdout } = await run('openstack', ['--os-cloud', 'lab', ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, OS_CLIENT_CONFIG_FILE: openstack.cloudsYaml },
    maxBuffer: 16 << 20,
  });
  return stdout;
}

/** Waits (bounded) until the service has finished `n` runs in total, and returns its snapshot. */
async function finishedRuns(n: number, timeoutMs = 240_000) {
  let snap = await service.snapshot();
  const deadline = Date.now() + timeoutMs;
  while (snap.runs.length < n || snap.running || snap.pending) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} finished run(s):\n${service.log()}`);
    await new Promise((r) => setTimeout(r, 500));
    snap = await service.snapshot();
  }
  return snap;
}

beforeAll(async () => {
  await ensureLab();
  openstack = await ensureOpenStack();
  await mkdir(SHOTS, { recursive: true });
  receiver = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      received.push(JSON.parse(text) as NotifyPayload);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/farm-hook`;
  variant = await labInventoryVariant((doc) => {
    doc.naming = { name: `farm-serve-${randomBytes(3).toString('hex')}` };
    // Only the arch built here, with one real target: the lab's Glance.
    doc.arches = { s390x: { types: ['qcow2'], targets: [{ kind: 'openstack', cloud: 'lab', image_type: 'qcow2' }] } };
    doc.service = {
      source: { watch: false },
      debounce: '5s',
      arches: ['s390x'],
      token_env: 'FARM_IT_TOKEN',
      webhooks: { github_secret_env: 'FARM_IT_GH', gitlab_token_env: 'FARM_IT_GL' },
      // The command writes its stdin (what a notify command receives) and its environment to files.
      notify: {
        webhook: receiverUrl,
        command: ['sh', '-c', 'cat > "$0"; env > "$1"', join(dirname(doc.settings.builds_dir), 'notify-payload.json'), join(dirname(doc.settings.builds_dir), 'notify-env.txt')],
        env: ['FARM_IT_CHANNEL'],
      },
    };
  });
  // Cloud credentials the service holds (the AWS and IBM ones unused here: no such target) are markers
  // the notify command must not see.
  env = {
    FARM_IT_TOKEN: TOKEN, FARM_IT_GH: GH_SECRET, FARM_IT_GL: GL_TOKEN, OS_CLIENT_CONFIG_FILE: openstack.cloudsYaml,
    AWS_SECRET_ACCESS_KEY: 'aws-marker-0b1c', IBMCLOUD_API_KEY: 'ibm-marker-0b1c', FARM_IT_CHANNEL: '#images',
  };
  service = await startServe(variant.file, env);
});

afterAll(async () => {
  await service?.stop('SIGTERM').catch(() => undefined);
  killServes();
  receiver?.close();
  for (const id of createdImages) await osc(['image', 'delete', id]).catch(() => undefined);
});

describe('farm serve on the lab', () => {
  it('refuses unauthenticated builds and bad webhooks, and builds nothing', async () => {
    const api = `${service.url}/api/builds`;
    expect((await fetch(api, { method: 'POST' })).status).toBe(401);
    expect((await fetch(api, { method: 'POST', headers: { authorization: 'Bearer wrong' } })).status).toBe(403);
    const badSig = await fetch(`${service.url}/hooks/github`, {
      method: 'POST',
      body: pushBody,
      headers: { 'x-github-event': 'push', 'x-hub-signature-256': sign(pushBody, 'not-the-secret') },
    });
    expect(badSig.status).toBe(401);
    // A correct signature over another body is still a bad signature.
    const tampered = await fetch(`${service.url}/hooks/github`, {
      method: 'POST',
      body: pushBody.replace('main', 'mainx'),
      headers: { 'x-github-event': 'push', 'x-hub-signature-256': sign(pushBody) },
    });
    expect(tampered.status).toBe(401);
    const gitlab = await fetch(`${service.url}/hooks/gitlab`, {
      method: 'POST',
      body: JSON.stringify({ object_kind: 'push', ref: 'refs/heads/main' }),
      headers: { 'x-gitlab-token': 'not-the-token' },
    });
    expect(gitlab.status).toBe(401);
    // The CLI with a wrong token is refused too.
    const cli = await farm(['build', '--server', service.url, '--arch', 's390x'], { env: { FARM_TOKEN: 'not-the-service-token-0c1d' } });
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/farm serve refused the build: wrong token/);

    await new Promise((r) => setTimeout(r, 2500)); // past the debounce: anything queued would have started
    const snap = await service.snapshot();
    expect(snap.running).toBeNull();
    expect(snap.pending).toBeNull();
    expect(snap.runs).toEqual([]);
    expect(await builtIds()).toEqual([]);
    expect(service.log()).toMatch(/refused a GitHub webhook: bad signature/);
    expect(service.log()).not.toContain(GH_SECRET);
  });

  it('`farm build --server` and a signed push close together give one build, whose images are announced', async () => {
    // The CLI first (a node process takes a moment to start), the push while its run still waits.
    const cli = farm(['build', '--server', service.url, '--arch', 's390x'], { env: { FARM_TOKEN: TOKEN } });
    await vi.waitFor(async () => expect((await service.snapshot()).pending).not.toBeNull(), { timeout: 30_000, interval: 50 });
    const hook = await fetch(`${service.url}/hooks/github`, {
      method: 'POST',
      body: pushBody,
      headers: { 'x-github-event': 'push', 'x-hub-signature-256': sign(pushBody), 'x-github-delivery': 'delivery-1' },
    });
    expect(hook.status).toBe(202);
    expect(await hook.json()).toMatchObject({ outcome: 'coalesced', status: 'queued (coalesced 2 triggers)' });
    const out = await cli;
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^queued run r\S+ on http:\/\/127\.0\.0\.1:\d+: queued$/m);
    expect(out.stdout).toMatch(/^  api: POST \/api\/builds \(farm build --server\)$/m);
    expect(out.stdout).toMatch(/^status: http:\/\/127\.0\.0\.1:\d+\/api\/builds\/r\S+$/m);

    const snap = await finishedRuns(1);
    expect(snap.runs).toHaveLength(1);
    const ids = await builtIds();
    expect(ids).toHaveLength(1); // one build run for two triggers
    const build = snap.builds[0]!;
    expect(build.build_id).toBe(ids[0]);
    expect(build.status).toBe('succeeded');
    expect(build.trigger).toBe('api+github');
    expect(build.reasons!.map((r) => r.kind)).toEqual(['api', 'github']);
    expect(build.arches.map((a) => [a.arch, a.step, a.uploads.map((u) => u.step)])).toEqual([['s390x', 'fetched', ['uploaded']]]);
    expect(build.images).toHaveLength(1);
    const image = build.images[0]!;
    createdImages.add(image.id);
    expect(image).toMatchObject({ target: 'openstack', kind: 'openstack', location: 'RegionOne', artifact_id: `lab:${image.id}`, existing: false });
    // Glance has it, active, under that name.
    const shown = JSON.parse(await osc(['image', 'show', image.id, '-f', 'json'])) as { name: string; status: string };
    expect(shown).toMatchObject({ name: image.name, status: 'active' });
    const state = JSON.parse(await readFile(join(variant.dir, 'builds', build.build_id, 'state.json'), 'utf8')) as BuildState;
    expect(state.trigger).toBe('api+github');
    expect(state.key).toMatch(/^sha256:[0-9a-f]{64}$/);

    // The notifications: the webhook receiver got the JSON, the command wrote its stdin to a file.
    await vi.waitFor(() => expect(received).toHaveLength(1), { timeout: 30_000 });
    const payload = received[0]!;
    expect(payload).toMatchObject({
      event: 'build.finished',
      build_id: build.build_id,
      status: 'succeeded',
      triggers: [{ kind: 'api' }, { kind: 'github' }],
      images: [{ target: 'openstack', location: 'RegionOne', name: image.name, id: image.id, artifact_id: `lab:${image.id}` }],
      artifacts: [{ arch: 's390x', type: 'qcow2', name: image.name }],
    });
    expect(payload.duration_s).toBeGreaterThan(0);
    const fromCommand = JSON.parse(await readFile(join(variant.dir, 'notify-payload.json'), 'utf8')) as NotifyPayload;
    expect(fromCommand).toEqual(payload);
    // It ran with PATH, HOME, LANG and what notify.env names, nothing of the service's secrets.
    const commandEnv = await readFile(join(variant.dir, 'notify-env.txt'), 'utf8');
    const names = commandEnv.trim().split('\n').map((l) => l.slice(0, l.indexOf('=')));
    expect(names.filter((n) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(n)).sort()).toEqual(['FARM_IT_CHANNEL', 'HOME', 'PATH', ...(process.env.LANG ? ['LANG'] : [])].sort());
    expect(names.filter((n) => /^(AWS_|IBMCLOUD_|OS_|COS_)/.test(n))).toEqual([]);
    for (const secret of [TOKEN, GH_SECRET, GL_TOKEN, 'aws-marker-0b1c', 'ibm-marker-0b1c']) expect(commandEnv).not.toContain(secret);
  });

  it('the status page, in a real browser, lists the new image with its id and a copy button', async () => {
    const snap = await service.snapshot();
    const build = snap.builds[0]!;
    const image = build.images[0]!;
    const browser = await launchBrowser();
    try {
      const page = await browser.context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      await page.goto(service.url + '/');
      const card = page.locator(`[data-build="${build.build_id}"]`);
      await card.waitFor({ timeout: 15_000 });
      const row = card.locator(`tr[data-image="${image.id}"]`);
      await expect.poll(() => row.count()).toBe(1);
      const cells = await row.locator('td').allInnerTexts();
      expect(cells.slice(0, 3)).toEqual(['openstack', 'RegionOne', 's390x']);
      expect(cells[3]).toContain(image.name);
      expect(cells[4]).toContain(image.id);
      expect(await row.locator(`button.copy[data-copy="${image.id}"]`).count()).toBe(1);
      expect(await card.locator('.badge').first().getAttribute('data-status')).toBe('succeeded');
      expect(await card.innerText()).toMatch(/trigger: api\+github/);
      expect(await card.innerText()).toMatch(/push to refs\/heads\/main \(c0ffee00c0ff\), delivery delivery-1/);
      // The log link serves the arch's log.
      const href = await card.locator('tr[data-arch="s390x"] a').getAttribute('href');
      expect(href).toBe(`/builds/${build.build_id}/s390x/build.log`);
      const log = await (await fetch(service.url + href)).text();
      expect(log).toMatch(/fetched and verified 1 image/);
      // Copying puts the id on the clipboard (loopback is a secure context).
      await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: service.url });
      await row.locator(`button.copy[data-copy="${image.id}"]`).click();
      await expect.poll(() => row.locator(`button.copy[data-copy="${image.id}"]`).innerText()).toBe('copied');
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(image.id);
      // It refreshes by itself: a new trigger shows up without a reload.
      const r = await fetch(`${service.url}/api/builds`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
      expect(r.status).toBe(202);
      await page.locator('#now [data-run]').first().waitFor({ timeout: 10_000 });
      await page.screenshot({ path: join(SHOTS, 'serve-page.png'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
    await finishedRuns(2);
    for (const b of (await service.snapshot()).builds) for (const i of b.images) createdImages.add(i.id);
  });

  it('a restart keeps the history', async () => {
    const before = await service.snapshot();
    expect(before.builds).toHaveLength(2);
    const stopped = await service.stop('SIGTERM');
    expect(stopped.code).toBe(0);
    service = await startServe(variant.file, env);
    const after = await service.snapshot();
    expect(after.builds.map((b) => b.build_id)).toEqual(before.builds.map((b) => b.build_id));
    expect(after.builds[1]!.reasons!.map((r) => r.kind)).toEqual(['api', 'github']);
    expect(after.runs.map((r) => r.id)).toEqual(before.runs.map((r) => r.id));
    expect(after.builds[1]!.images[0]!.id).toBe(before.builds[1]!.images[0]!.id);
  });

  it('SIGTERM during a build cancels it and records it as cancelled (on_shutdown: cancel)', async () => {
    const r = await fetch(`${service.url}/api/builds`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{"arches":"s390x"}' });
    expect(r.status).toBe(202);
    let buildId: string | undefined;
    await vi.waitFor(
      async () => {
        const s = await service.snapshot();
        buildId = s.running?.build_id;
        expect(buildId).toBeDefined();
        expect(s.builds.find((b) => b.build_id === buildId)?.arches[0]?.step).toBe('building');
      },
      { timeout: 60_000, interval: 200 },
    );
    const stopped = await service.stop('SIGTERM');
    expect(stopped.code).toBe(0);
    const state = JSON.parse(await readFile(join(variant.dir, 'builds', buildId!, 'state.json'), 'utf8')) as BuildState;
    expect(state.status).toBe('cancelled');
    expect(state.finishedAt).toBeDefined();
    expect(service.log()).toMatch(/stopping: cancelling the running build/);
    service = await startServe(variant.file, env);
    const snap = await service.snapshot();
    expect(snap.runs[0]).toMatchObject({ build_id: buildId, status: 'cancelled' });
    expect(snap.running).toBeNull();
    expect(snap.pending).toBeNull();
  });

  it('serves Prometheus metrics', async () => {
    const text = await (await fetch(`${service.url}/metrics`)).text();
    expect(text).toMatch(/^# TYPE farm_builds_total counter$/m);
    expect(text).toMatch(/^farm_last_success_timestamp_seconds \d{10}(\.\d+)?$/m);
    expect(text).toMatch(/^farm_queue_length 0$/m);
  });
});
