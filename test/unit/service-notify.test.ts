import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startStandIn } from '../support/serve-in-process.ts';
import { notifyEnv, notifyPayload, postWebhook, runNotifyCommand } from '../../src/service/notify.ts';
import type { BuildSummary } from '../../src/records/history.ts';
import type { RunRecord } from '../../src/service/store.ts';

const run: RunRecord = {
  id: 'r20250101000000-abcdef',
  reasons: [
    { kind: 'github', detail: 'push to refs/heads/main (0123456789ab)', at: '2025-01-01T00:00:00.000Z', force: true },
    { kind: 'api', detail: 'POST /api/builds', at: '2025-01-01T00:00:01.000Z', force: true },
  ],
  queuedAt: '2025-01-01T00:00:00.000Z',
  startedAt: '2025-01-01T00:00:02.000Z',
  finishedAt: '2025-01-01T00:01:00.000Z',
  status: 'succeeded',
  buildId: '20250101t000002z',
};

const build: BuildSummary = {
  buildId: '20250101t000002z',
  dir: '/b/20250101t000002z',
  status: 'succeeded',
  startedAt: '2025-01-01T00:00:02.000Z',
  finishedAt: '2025-01-01T00:00:59.500Z',
  key: 'sha256:' + 'a'.repeat(64),
  trigger: 'github+api',
  arches: {
    s390x: {
      arch: 's390x',
      step: 'fetched',
      types: ['qcow2'],
      imageName: 'farm-20250101-000002-s390x',
      artifacts: [],
      uploads: { openstack: { target: 'openstack', kind: 'openstack', type: 'qcow2', step: 'uploaded', images: [], at: {} } },
      at: {},
      durations: { build: 30.04, fetch: 5.55 },
    },
  },
  images: [
    { buildId: '20250101t000002z', arch: 's390x', type: 'qcow2', target: 'openstack', kind: 'openstack', location: 'RegionOne', imageName: 'farm-20250101-000002-s390x', imageId: 'img-1', artifactId: 'RegionOne:img-1', existing: false },
    { buildId: '20250101t000002z', arch: 's390x', type: 'qcow2', target: 'libvirt', kind: 'libvirt', location: 'hv1/images', imageName: 'farm-old', imageId: 'vol-0', artifactId: 'hv1:vol-0', existing: true },
  ],
  artifacts: [{ arch: 's390x', type: 'qcow2', imageName: 'farm-20250101-000002-s390x', path: '/b/x/disk.qcow2', size: 1234, sha256: 'f'.repeat(64) }],
};

const servers: Array<{ close: () => void }> = [];
afterEach(() => servers.splice(0).forEach((s) => s.close()));

/** A webhook receiver on loopback answering with the given statuses in turn. */
async function receiver(statuses: number[]): Promise<{ url: string; bodies: unknown[]; requests: IncomingMessage[] }> {
  const bodies: unknown[] = [];
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      requests.push(req);
      bodies.push(JSON.parse(text));
      res.writeHead(statuses[Math.min(bodies.length - 1, statuses.length - 1)]!).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?key=abc`, bodies, requests };
}

describe('notifications', () => {
  it('the payload names the build, its triggers, durations, new images and artifacts', () => {
    const p = notifyPayload(run, build, 'http://127.0.0.1:8080/api/builds/20250101t000002z');
    expect(p).toMatchObject({
      event: 'build.finished',
      run_id: run.id,
      build_id: '20250101t000002z',
      status: 'succeeded',
      triggers: [
        { kind: 'github', detail: 'push to refs/heads/main (0123456789ab)' },
        { kind: 'api', detail: 'POST /api/builds' },
      ],
      duration_s: 57.5,
      queued_s: 2,
      arches: { s390x: { step: 'fetched', build_s: 30, fetch_s: 5.6, uploads: { openstack: 'uploaded' } } },
      images: [{ arch: 's390x', type: 'qcow2', target: 'openstack', kind: 'openstack', location: 'RegionOne', name: 'farm-20250101-000002-s390x', id: 'img-1', artifact_id: 'RegionOne:img-1' }],
      reused_images: [{ target: 'libvirt', id: 'vol-0' }],
      artifacts: [{ arch: 's390x', name: 'farm-20250101-000002-s390x', size: 1234 }],
      status_url: 'http://127.0.0.1:8080/api/builds/20250101t000002z',
    });
  });

  it('POSTs JSON to the webhook and retries a 5xx with backoff', async () => {
    const r = await receiver([503, 500, 204]);
    const logs: string[] = [];
    const status = await postWebhook(r.url, { hello: 'world' }, { minTimeoutMs: 10, log: (l) => logs.push(l) });
    expect(status).toBe(204);
    expect(r.bodies).toEqual([{ hello: 'world' }, { hello: 'world' }, { hello: 'world' }]);
    expect(r.requests[0]!.headers['content-type']).toBe('application/json');
    expect(logs).toHaveLength(2);
    expect(logs[0]).toMatch(/answered 503 \(attempt 1, retrying\)/);
    // The query string may hold a secret: logs name the origin only.
    expect(logs.join('\n')).not.toContain('key=abc');
  });

  it('does not retry a 4xx other than 408/429', async () => {
    const r = await receiver([404]);
    await expect(postWebhook(r.url, {}, { minTimeoutMs: 10 })).rejects.toThrow(/answered 404/);
    expect(r.bodies).toHaveLength(1);
  });

  it('runs the command with the JSON on stdin', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farm-notify-'));
    const out = join(dir, 'payload.json');
    const payload = notifyPayload(run, build);
    const env = notifyEnv(process.env, []);
    expect(await runNotifyCommand(['tee', out], payload, { env })).toBe(0);
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual(payload);
    const logs: string[] = [];
    expect(await runNotifyCommand(['sh', '-c', 'cat >/dev/null; echo nope >&2; exit 3'], payload, { env, log: (l) => logs.push(l) })).toBe(3);
    expect(logs[0]).toMatch(/exited 3: nope/);
    await expect(runNotifyCommand([join(dir, 'missing')], payload, { env })).rejects.toThrow(/ENOENT/);
  });
});

describe('the notify command environment', () => {
  it('is PATH, HOME, LANG and what service.notify.env names: never the cloud credentials or the tokens', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'farm-notify-env-')), 'env.txt');
    const secrets = {
      AWS_ACCESS_KEY_ID: 'AKIAMARKER', AWS_SECRET_ACCESS_KEY: 'aws-marker', AWS_SESSION_TOKEN: 'aws-session-marker', AWS_PROFILE: 'prod',
      IBMCLOUD_API_KEY: 'ibm-marker', COS_HMAC_SECRET_ACCESS_KEY: 'cos-marker', OS_PASSWORD: 'os-marker', OS_CLOUD: 'lab', OS_APPLICATION_CREDENTIAL_SECRET: 'os-app-marker',
      N_TOKEN: 'api-token-marker', N_GH: 'github-secret-marker',
    };
    const s = await startStandIn({
      service: `  source: { watch: false }
  debounce: 10ms
  token_env: N_TOKEN
  webhooks: { github_secret_env: N_GH }
  public_url: https://farm.example.org
  notify: { command: [sh, -c, 'env > "$0"; cat > "$1"', ${JSON.stringify(out)}, ${JSON.stringify(out + '.json')}], env: [CHAT_CHANNEL] }`,
      env: { PATH: process.env.PATH, HOME: '/home/farm', LANG: 'C.UTF-8', CHAT_CHANNEL: '#images', TERM: 'xterm', ...secrets },
    });
    try {
      const r = await fetch(`${s.base}/api/builds`, { method: 'POST', headers: { authorization: 'Bearer api-token-marker' } });
      expect(r.status).toBe(202);
      await s.service.queue.idle();
      const env = Object.fromEntries((await readFile(out, 'utf8')).trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      // sh itself adds PWD (and some shells SHLVL, _, OLDPWD).
      const given = Object.keys(env).filter((k) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(k)).sort();
      expect(given).toEqual(['CHAT_CHANNEL', 'HOME', 'LANG', 'PATH']);
      expect(env).toMatchObject({ HOME: '/home/farm', LANG: 'C.UTF-8', CHAT_CHANNEL: '#images' });
      const text = JSON.stringify(env);
      for (const [name, value] of Object.entries(secrets)) {
        expect(text).not.toContain(name);
        expect(text).not.toContain(value);
      }
      expect(Object.keys(env).filter((k) => /^(AWS_|IBMCLOUD_|OS_|COS_)/.test(k))).toEqual([]);
      // Its status link is the address clients use, not the listener's.
      const payload = JSON.parse(await readFile(out + '.json', 'utf8')) as { status_url: string; build_id: string };
      expect(payload.status_url).toBe(`https://farm.example.org/api/builds/${payload.build_id}`);
    } finally {
      await s.stop();
    }
  });
});
