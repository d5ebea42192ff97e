// The service's HTTP surface with the build job stood in for (the lab tests run real builds):
// authentication, webhooks, coalescing, the log file server's path checks, metrics.

import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Snapshot } from '../../src/service/service.ts';
import { startStandIn, type StandIn } from '../support/serve-in-process.ts';

const TOKEN = 'api-token-for-tests';
const GH_SECRET = 'github-hook-secret';
const GL_TOKEN = 'gitlab-hook-token';

let standIn: StandIn;
let service: StandIn['service'];
let base: string;
let jobs: StandIn['jobs'];

const hold = () => standIn.hold();
const release = () => standIn.release();
const post = (path: string, init: RequestInit = {}) => fetch(base + path, { method: 'POST', ...init });
const snapshot = async () => (await (await fetch(base + '/api/builds')).json()) as Snapshot;
const sign = (body: string, secret = GH_SECRET) => 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');

beforeAll(async () => {
  standIn = await startStandIn({
    service: `  source: { watch: false }
  debounce: 300ms
  token_env: T_TOKEN
  webhooks: { github_secret_env: T_GH, gitlab_token_env: T_GL }
  arches: [s390x]`,
    env: { T_TOKEN: TOKEN, T_GH: GH_SECRET, T_GL: GL_TOKEN },
  });
  ({ service, base, jobs } = standIn);
});

afterAll(async () => {
  await standIn?.stop();
});

describe('farm serve HTTP (build job stood in)', () => {
  it('refuses unauthenticated and wrongly authenticated builds, and queues nothing', async () => {
    const none = await post('/api/builds');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await post('/api/builds', { headers: { authorization: 'Bearer nope' } })).status).toBe(403);
    const gh = '{"ref":"refs/heads/main"}';
    expect((await post('/hooks/github', { body: gh, headers: { 'x-github-event': 'push', 'x-hub-signature-256': sign(gh, 'wrong') } })).status).toBe(401);
    expect((await post('/hooks/github', { body: gh, headers: { 'x-github-event': 'push' } })).status).toBe(401);
    expect((await post('/hooks/gitlab', { body: '{"object_kind":"push"}', headers: { 'x-gitlab-token': 'wrong' } })).status).toBe(401);
    const s = await snapshot();
    expect(s.running).toBeNull();
    expect(s.pending).toBeNull();
    expect(s.runs).toEqual([]);
    expect(jobs).toHaveLength(0);
    expect(await (await fetch(base + '/metrics')).text()).toMatch(/farm_triggers_total\{kind="github",outcome="refused"\} 2/);
  });

  it('answers pings and ignores events that are not pushes', async () => {
    const ping = '{"zen":"hi"}';
    const r = await post('/hooks/github', { body: ping, headers: { 'x-github-event': 'ping', 'x-hub-signature-256': sign(ping) } });
    expect(r.status).toBe(200);
    const issue = '{"action":"opened"}';
    const i = await post('/hooks/github', { body: issue, headers: { 'x-github-event': 'issues', 'x-hub-signature-256': sign(issue) } });
    expect(await i.json()).toEqual({ ignored: 'event issues is not a push' });
    const mr = await post('/hooks/gitlab', { body: '{"object_kind":"merge_request"}', headers: { 'x-gitlab-token': GL_TOKEN } });
    expect(await mr.json()).toEqual({ ignored: 'object_kind merge_request is not a push' });
    expect((await snapshot()).pending).toBeNull();
  });

  it('a signed GitHub push, a GitLab push and an API call together make one run', async () => {
    hold();
    const gh = JSON.stringify({ ref: 'refs/heads/main', after: '0123456789abcdef0123456789abcdef01234567' });
    const [a, b, c] = await Promise.all([
      post('/hooks/github', { body: gh, headers: { 'x-github-event': 'push', 'x-hub-signature-256': sign(gh), 'x-github-delivery': 'd-1' } }),
      post('/hooks/gitlab', { body: JSON.stringify({ object_kind: 'push', ref: 'refs/heads/main' }), headers: { 'x-gitlab-token': GL_TOKEN } }),
      post('/api/builds', { headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ arches: ['s390x'] }) }),
    ]);
    expect([a.status, b.status, c.status]).toEqual([202, 202, 202]);
    const bodies = (await Promise.all([a.json(), b.json(), c.json()])) as Array<{ outcome: string; status: string; run: { id: string } }>;
    expect(new Set(bodies.map((x) => x.run.id)).size).toBe(1);
    expect(bodies.map((x) => x.outcome).sort()).toEqual(['coalesced', 'coalesced', 'queued']);
    expect(bodies.map((x) => x.status)).toContain('queued (coalesced 3 triggers)');
    const queued = await snapshot();
    expect(queued.pending?.status_text).toBe('queued (coalesced 3 triggers)');

    await vi.waitFor(async () => expect((await snapshot()).running?.build_id).toBeDefined());
    const running = await snapshot();
    expect(running.pending).toBeNull();
    expect(running.running!.reasons.map((r) => r.kind).sort()).toEqual(['api', 'github', 'gitlab']);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.arches).toBe('s390x');
    expect(jobs[0]!.trigger!.split('+').sort()).toEqual(['api', 'github', 'gitlab']);

    // While it runs, two more triggers wait as one.
    const more = await Promise.all([1, 2].map(() => post('/api/builds', { headers: { authorization: `Bearer ${TOKEN}` } })));
    expect(((await more[1]!.json()) as { status: string }).status).toBe('queued (coalesced 2 triggers)');
    release();
    await vi.waitFor(async () => expect(jobs).toHaveLength(2));
    release();
    await service.queue.idle();
    const done = await snapshot();
    expect(done.builds.map((b) => b.status)).toEqual(['succeeded', 'succeeded']);
    expect(done.builds[1]!.reasons!.map((r) => r.detail)).toContain('push to refs/heads/main (0123456789ab), delivery d-1');
    expect(done.builds[0]!.images).toEqual([expect.objectContaining({ target: 'openstack', id: `img-${done.builds[0]!.build_id}` })]);
    expect(jobs).toHaveLength(2);
    const metrics = await (await fetch(base + '/metrics')).text();
    // The first run is labelled by whichever of its three triggers arrived first; the second is api.
    const byTrigger = Object.fromEntries(
      [...metrics.matchAll(/farm_builds_total\{status="succeeded",trigger="(\w+)"\} (\d+)/g)].map((m) => [m[1]!, Number(m[2])]),
    );
    expect(Object.values(byTrigger).reduce((a, b) => a + b, 0)).toBe(2);
    expect(byTrigger.api).toBeGreaterThanOrEqual(1);
    expect(Object.keys(byTrigger).every((k) => ['api', 'github', 'gitlab'].includes(k))).toBe(true);
    expect(metrics).toMatch(/farm_images_published_total\{target="openstack",kind="openstack"\} 2/);
    expect(metrics).toMatch(/farm_queue_length 0/);
    expect(metrics).toMatch(/farm_last_success_timestamp_seconds \d{10}/);
  });

  it('GET /api/builds/<id> finds runs and builds', async () => {
    const s = await snapshot();
    const build = s.builds[0]!;
    const byBuild = (await (await fetch(`${base}/api/builds/${build.build_id}`)).json()) as { build_id: string; run_id: string };
    expect(byBuild.build_id).toBe(build.build_id);
    const byRun = (await (await fetch(`${base}/api/builds/${byBuild.run_id}`)).json()) as { build_id: string; status: string };
    expect(byRun).toMatchObject({ build_id: build.build_id, status: 'succeeded' });
    expect((await fetch(`${base}/api/builds/nope`)).status).toBe(404);
  });

  it('serves per-arch logs and manifests under builds_dir only', async () => {
    const s = await snapshot();
    const b = s.builds[0]!;
    const log = await fetch(base + b.arches[0]!.log);
    expect(log.status).toBe(200);
    expect(log.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await log.text()).toMatch(/info building on the stand-in/);
    expect((await fetch(base + b.manifest)).status).toBe(200);
    for (const path of [
      '/builds/../farm.yaml',
      '/builds/%2e%2e/farm.yaml',
      `/builds/${b.build_id}/s390x/..%2f..%2f..%2ffarm.yaml`,
      `/builds/${b.build_id}/state.json`,
      '/builds/.service/service.json',
      `/builds/${b.build_id}/x86_64/build.log`,
    ]) {
      expect((await fetch(base + path)).status, path).toBe(404);
    }
  });

  it('the page is one HTML document under a strict CSP', async () => {
    const r = await fetch(base + '/');
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = r.headers.get('content-security-policy')!;
    const nonce = /'nonce-([^']+)'/.exec(csp)![1]!;
    const html = await r.text();
    expect(html).toContain(`<script nonce="${nonce}">`);
    expect(csp).toMatch(/default-src 'none'/);
    expect((await fetch(base + '/', { method: 'DELETE' })).status).toBe(405);
  });
});
