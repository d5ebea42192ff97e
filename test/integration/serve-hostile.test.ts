// The real `farm serve` process (bin/farm.js) under hostile traffic: 24 concurrent 24 MiB
// unauthenticated POSTs to each webhook, measured from /proc (peak RSS, bytes the process read);
// a slowloris client; a DNS-rebound Host. Needs no lab: nothing here builds.

import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flood, MiB, procStats, rawConnection, type FloodRequest } from '../support/flood.ts';
import { killServes, serveInventory, startServe, type ServeProcess } from '../support/serve.ts';

const COUNT = 24;
const SIZE = 24 * MiB;

let service: ServeProcess;

beforeAll(async () => {
  const inventory = await serveInventory(`  source: { watch: false }
  webhooks: { github_secret_env: HOSTILE_GH, gitlab_token_env: HOSTILE_GL }`);
  service = await startServe(inventory, { HOSTILE_GH: 'hostile-github-secret', HOSTILE_GL: 'hostile-gitlab-token' });
});

afterAll(async () => {
  await service?.stop('SIGTERM', 30_000).catch(() => undefined);
  killServes();
});

describe('farm serve (the real process) under hostile traffic', () => {
  it(`${COUNT} x ${SIZE / MiB} MiB unauthenticated POSTs to each webhook: RSS and bytes read stay small, every one refused`, async () => {
    await new Promise((r) => setTimeout(r, 1000));
    const before = await procStats(service.pid);
    const forged = 'sha256=' + '0'.repeat(64);
    const github = (chunked: boolean): FloodRequest => ({ path: '/hooks/github', size: SIZE, chunked, headers: { 'x-github-event': 'push', 'x-hub-signature-256': forged } });
    const gitlab: FloodRequest = { path: '/hooks/gitlab', size: SIZE, headers: { 'x-gitlab-token': 'not-the-token' } };
    const requests = [...Array(COUNT).fill(github(false)), ...Array(COUNT).fill(github(true)), ...Array(COUNT).fill(gitlab)] as FloodRequest[];
    const result = await flood(service.url, requests);
    const after = await procStats(service.pid);

    // Before this was fixed: 24 such posts to one hook took the service from ~220 to ~750 MiB and
    // it read every byte (576 MiB per hook).
    expect(after.peakRss - before.rss, `peak ${after.peakRss / MiB} MiB, rest ${before.rss / MiB} MiB`).toBeLessThan(64 * MiB);
    expect(after.readBytes - before.readBytes, 'bytes read').toBeLessThan(64 * MiB);
    // The answer, or (a client still writing when the refusal closed the connection) EPIPE/ECONNRESET.
    const answers = Object.keys(result.outcomes);
    expect(answers.filter((a) => !['401', '413', '503', 'EPIPE', 'ECONNRESET'].includes(a)), JSON.stringify(result.outcomes)).toEqual([]);
    expect(result.outcomes['401'] ?? 0, JSON.stringify(result.outcomes)).toBeGreaterThan(COUNT / 2);
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    // A few lines a minute per kind of refusal, not one per request.
    expect(service.log().match(/refused a GitLab webhook/g)?.length).toBeLessThanOrEqual(10);
    expect(service.log().match(/refused a GitHub webhook/g)?.length).toBeLessThanOrEqual(10);
  });

  it('drops a client that never finishes its headers within seconds', { timeout: 40_000 }, async () => {
    const c = rawConnection(Number(new URL(service.url).port), 'POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const drip = setInterval(() => c.write('a'), 1000);
    try {
      const { ms, received } = await c.closed;
      expect(ms).toBeLessThan(12_000);
      expect(received).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      clearInterval(drip);
    }
  });

  it('answers no name it does not know (DNS rebinding cannot read /api/builds)', async () => {
    const answer = (host: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: Number(new URL(service.url).port), path: '/api/builds', headers: { host } }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end();
      });
    const rebound = await answer('rebind.evil.example:80');
    expect(rebound.status).toBe(421);
    expect(rebound.body).not.toContain('"builds"');
    expect((await answer(new URL(service.url).host)).status).toBe(200);
  });
});
