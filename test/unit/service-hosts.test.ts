// DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 makes the browser
// send same-origin requests to the service, with Host: evil.example. The service answers only the
// names it knows, so such a page cannot read /api/builds (or anything else).

import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostCheck } from '../../src/service/hosts.ts';
import { startStandIn, type StandIn } from '../support/serve-in-process.ts';

describe('Host names the service answers', () => {
  it('the listen host, public_url, localhost and IP literals; nothing else', () => {
    const c = new HostCheck('127.0.0.1', 'https://farm.example.org');
    for (const ok of ['127.0.0.1:8080', '127.0.0.1', 'localhost:8080', 'LOCALHOST', '[::1]:8080', '10.1.2.3:80', 'farm.example.org', 'Farm.Example.Org.:443']) {
      expect(c.check(ok), ok).toEqual({ ok: true });
    }
    for (const bad of ['evil.example:8080', 'farm.example.org.evil.example', '127.0.0.1.nip.io', 'localhost.evil.example', 'example.org']) {
      const v = c.check(bad);
      expect(v, bad).toMatchObject({ ok: false, status: 421 });
      expect(!v.ok && v.message, bad).toMatch(/set service\.public_url to the address clients use/);
    }
    for (const malformed of [undefined, '', 'a b', 'user@127.0.0.1', '[zz]:80', '127.0.0.1:8080/x', 'evil.example\u001b[2K']) {
      expect(c.check(malformed), String(malformed)).toMatchObject({ ok: false, status: 400 });
    }
    expect(c.check('evil.example\u001b[2K:80')).toMatchObject({ ok: false, message: expect.stringContaining('\\x1b[2K') });
    // A named listen host is answered; a wildcard one adds no name.
    expect(new HostCheck('farm.internal').check('farm.internal:8080')).toEqual({ ok: true });
    expect(new HostCheck('0.0.0.0').check('farm.internal:8080')).toMatchObject({ ok: false, status: 421 });
    expect(new HostCheck('::').check('192.168.1.4:8080')).toEqual({ ok: true });
  });
});

describe('farm serve refuses requests for names it does not know', () => {
  let s: StandIn;
  beforeAll(async () => {
    s = await startStandIn({
      service: `  public_url: https://farm.example.org
  source: { watch: false }
  token_env: H_TOKEN
  webhooks: { github_secret_env: H_GH }`,
      env: { H_TOKEN: 'host-token', H_GH: 'host-secret' },
    });
  });
  afterAll(() => s?.stop());

  /** node:http lets the test set Host (fetch sets it from the URL). */
  function get(path: string, host: string, method = 'GET'): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: s.port, path, method, headers: { host } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('421 for a rebound name on every route, reads and writes alike; 200 for its own names', async () => {
    for (const [path, method] of [['/api/builds', 'GET'], ['/', 'GET'], ['/metrics', 'GET'], ['/builds/20250101t000000z/manifest.json', 'GET'], ['/api/builds', 'POST'], ['/hooks/github', 'POST']] as const) {
      const r = await get(path, `evil.example:${s.port}`, method);
      expect(r.status, `${method} ${path}`).toBe(421);
      expect(JSON.parse(r.body), path).toEqual({ error: expect.stringMatching(/does not answer to "evil\.example".*farm\.example\.org.*set service\.public_url/) });
      expect(r.body).not.toMatch(/"builds"|"runs"/);
    }
    for (const host of [`127.0.0.1:${s.port}`, `localhost:${s.port}`, 'farm.example.org']) {
      const r = await get('/api/builds', host);
      expect(r.status, host).toBe(200);
      expect(JSON.parse(r.body)).toHaveProperty('builds');
    }
    expect(s.log()).toMatch(/refused GET \/api\/builds: this service does not answer to "evil\.example"/);
  });
});
