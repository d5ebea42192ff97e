// Which pushes start a build, over the real HTTP server with the build job stood in for: a replayed
// delivery (GitHub's HMAC covers the body, not X-GitHub-Delivery, so a captured request verifies
// again under any delivery id) and a commit already queued, being built or built start nothing,
// and the answer says why; the memory survives a restart. Control characters in what a push
// carries (branch names, commit messages) reach neither the log nor the API unescaped.

import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { githubPush, gitlabPush } from '../../src/service/pushes.ts';
import { startStandIn, type StandIn } from '../support/serve-in-process.ts';

const GH_SECRET = 'pushes-github-secret';
const GL_TOKEN = 'pushes-gitlab-token';
const SERVICE = `  source: { watch: false }
  debounce: 200ms
  webhooks: { github_secret_env: P_GH, gitlab_token_env: P_GL }`;
const ENV = { P_GH: GH_SECRET, P_GL: GL_TOKEN };
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

let s: StandIn;

beforeAll(async () => {
  s = await startStandIn({ service: SERVICE, env: ENV });
});
afterAll(() => s?.stop());

const sign = (body: string) => 'sha256=' + createHmac('sha256', GH_SECRET).update(body).digest('hex');

async function github(after: string, delivery: string, extra: Record<string, unknown> = {}) {
  const body = JSON.stringify({ ref: 'refs/heads/main', after, ...extra });
  const r = await fetch(`${s.base}/hooks/github`, {
    method: 'POST',
    body,
    headers: { 'x-github-event': 'push', 'x-hub-signature-256': sign(body), 'x-github-delivery': delivery },
  });
  return { status: r.status, body: (await r.json()) as { ignored?: string; outcome?: string; run?: { id: string } } };
}

async function gitlab(sha: string, key: string) {
  const r = await fetch(`${s.base}/hooks/gitlab`, {
    method: 'POST',
    body: JSON.stringify({ object_kind: 'push', ref: 'refs/heads/main', checkout_sha: sha, after: sha }),
    headers: { 'x-gitlab-token': GL_TOKEN, 'idempotency-key': key },
  });
  return { status: r.status, body: (await r.json()) as { ignored?: string; outcome?: string } };
}

describe('pushes that start no build', () => {
  it('a replayed delivery, and a commit queued, being built or built, are answered with why', async () => {
    s.hold();
    const first = await github(A, 'd-1');
    expect(first).toMatchObject({ status: 202, body: { outcome: 'queued' } });
    const runId = first.body.run!.id;
    // The very same request again: GitHub's redelivery, or a replay.
    expect((await github(A, 'd-1')).body).toEqual({ ignored: expect.stringMatching(/^delivery d-1 was already received at \d{4}-\d\d-\d\dT/) });
    // The same signed body under a new delivery id (the id is not signed).
    expect((await github(A, 'd-2')).body).toEqual({ ignored: `commit ${A.slice(0, 12)} is already queued (run ${runId})` });
    await vi.waitFor(async () => expect((await s.snapshot()).running?.id).toBe(runId));
    expect((await github(A, 'd-3')).body).toEqual({ ignored: `commit ${A.slice(0, 12)} is already being built (run ${runId})` });
    expect((await gitlab(A, 'k-1')).body).toEqual({ ignored: `commit ${A.slice(0, 12)} is already being built (run ${runId})` });
    s.release();
    await s.service.queue.idle();
    const built = (await s.snapshot()).runs[0]!;
    expect((await github(A, 'd-4')).body).toEqual({ ignored: `commit ${A.slice(0, 12)} was already built (run ${runId}, build ${built.build_id}, succeeded)` });
    expect(s.jobs).toHaveLength(1);

    // A new commit builds; GitLab's retry (same Idempotency-Key) of it does not.
    expect(await gitlab(B, 'k-2')).toMatchObject({ status: 202, body: { outcome: 'queued' } });
    expect((await gitlab(B, 'k-2')).body).toEqual({ ignored: expect.stringMatching(/^delivery k-2 was already received/) });
    await s.service.queue.idle();
    expect(s.jobs).toHaveLength(2);
    expect(s.log()).toMatch(/github push ignored: delivery d-1 was already received/);
  });

  it('remembers deliveries and built commits across a restart', async () => {
    await s.stop();
    s = await startStandIn({ service: SERVICE, env: ENV, dir: s.dir });
    expect((await github(A, 'd-1')).body).toEqual({ ignored: expect.stringMatching(/^delivery d-1 was already received/) });
    expect((await github(B, 'd-9')).body).toEqual({ ignored: expect.stringMatching(new RegExp(`^commit ${B.slice(0, 12)} was already built`)) });
    await new Promise((r) => setTimeout(r, 400)); // past the debounce: anything queued would have started
    expect((await s.snapshot()).pending).toBeNull();
    expect(s.jobs).toHaveLength(0);
  });
});

describe('a push refused while the service stops', () => {
  it('is not remembered: the forge retries it after the restart and it builds', async () => {
    const D = 'd'.repeat(40);
    await s.service.queue.stop('finish'); // stopping: no more runs are taken, the listener still answers
    const refused = await github(D, 'd-stopping');
    expect(refused.status).toBe(503);
    await s.stop();
    s = await startStandIn({ service: SERVICE, env: ENV, dir: s.dir });
    expect(await github(D, 'd-stopping')).toMatchObject({ status: 202, body: { outcome: 'queued' } });
    await s.service.queue.idle();
    expect(s.jobs).toHaveLength(1);
  });
});

describe('control characters from requests', () => {
  it('are escaped in the log and the API: branch names, commit messages, event names', async () => {
    const ref = 'refs/heads/main\u001b[2K\r[serve] run r1 succeeded\u202e';
    const commit = 'c'.repeat(40);
    const r = await github(commit, 'd-ctl', { ref, head_commit: { id: commit, message: 'Fix \u001b]0;owned\u0007title\u0000\nsecond line\n' } });
    expect(r.status).toBe(202);
    const event = await fetch(`${s.base}/hooks/github`, { method: 'POST', body: '{}', headers: { 'x-github-event': 'push\u0085x', 'x-hub-signature-256': sign('{}') } });
    expect(event.status).toBe(202);
    await s.service.queue.idle();
    // Whatever reaches the log is escaped there too (a notify command's stderr, a git error).
    s.service.log('git fetch failed: remote: \u001b[31mdenied\u001b[0m\r\nforged line');

    const log = s.log();
    for (const line of log.split('\n')) expect(line, JSON.stringify(line)).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(log).toContain('push to refs/heads/main\\x1b[2K\\r[serve] run r1 succeeded\\u202e (cccccccccccc "Fix \\x1b]0;owned\\x07title\\x00")');
    expect(log).toContain('[serve] git fetch failed: remote: \\x1b[31mdenied\\x1b[0m\\r\\nforged line\n');
    const detail = (await s.snapshot()).runs[0]!.reasons[0]!.detail;
    expect(detail).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(detail).toContain('main\\x1b[2K\\r[serve]');
  });

  it('payloads reduce to ref, head commit, subject and delivery; malformed ids are dropped', () => {
    expect(githubPush({ ref: 'refs/heads/x', after: A.toUpperCase(), head_commit: { message: 'subject\nbody' } }, 'd-1')).toEqual({
      ref: 'refs/heads/x', commit: A, subject: 'subject', deleted: false, delivery: 'd-1',
    });
    expect(githubPush({ ref: 'refs/heads/x', after: '0'.repeat(40), deleted: true }, 'has space')).toEqual({ ref: 'refs/heads/x', deleted: true });
    expect(githubPush({ ref: 5, after: 'not-a-sha' }, undefined)).toEqual({ ref: '', deleted: false });
    expect(gitlabPush({ ref: 'refs/heads/x', checkout_sha: B, after: B, commits: [{ id: A, message: 'old' }, { id: B, message: 'new\n' }] }, 'k')).toEqual({
      ref: 'refs/heads/x', commit: B, subject: 'new', deleted: false, delivery: 'k',
    });
    expect(gitlabPush({ ref: 'refs/heads/x', checkout_sha: null, after: '0'.repeat(40) }, undefined)).toMatchObject({ deleted: true });
  });
});
