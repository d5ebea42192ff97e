// `farm serve` under hostile traffic, over real TCP connections to its real HTTP server: refusals
// answered from the headers before any body is sent, Expect: 100-continue honoured, a cap on
// bodies nobody has authenticated yet, and the server's own timeouts and connection limit.

import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_TIMEOUT_MS, HOOK_BODY_LIMIT, UNVERIFIED_BODIES } from '../../src/service/hooks.ts';
import { SERVER_LIMITS } from '../../src/service/http.ts';
import { QuietLog } from '../../src/service/quiet-log.ts';
import { MiB, rawConnection, type RawConnection } from '../support/flood.ts';
import { startStandIn, type StandIn } from '../support/serve-in-process.ts';

const GH_SECRET = 'limits-github-secret';
const GL_TOKEN = 'limits-gitlab-token';
const TOKEN = 'limits-api-token';

let s: StandIn;
const open: RawConnection[] = [];

beforeAll(async () => {
  s = await startStandIn({
    service: `  source: { watch: false }
  debounce: 1h
  token_env: L_TOKEN
  webhooks: { github_secret_env: L_GH, gitlab_token_env: L_GL }`,
    env: { L_TOKEN: TOKEN, L_GH: GH_SECRET, L_GL: GL_TOKEN },
  });
});

afterAll(async () => {
  for (const c of open) c.socket.destroy();
  await s?.stop();
});

function connection(first: string | Buffer): RawConnection {
  const c = rawConnection(s.port, first);
  open.push(c);
  return c;
}

const head = (path: string, headers: Record<string, string>) =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

const status = (h: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(h)?.[1]);
const sign = (body: string | Buffer) => 'sha256=' + createHmac('sha256', GH_SECRET).update(body).digest('hex');
const forged = 'sha256=' + 'ab'.repeat(32);

describe('farm serve: nothing is read before it is authenticated', () => {
  it('refuses from the headers alone, before the client has sent its body, and closes the connection', async () => {
    const big = { 'content-length': String(24 * MiB), 'content-type': 'application/json' };
    const cases: Array<[string, Record<string, string>, number, RegExp]> = [
      ['/hooks/gitlab', { ...big, 'x-gitlab-token': 'wrong' }, 401, /wrong token/],
      ['/hooks/gitlab', big, 401, /missing X-Gitlab-Token/],
      ['/hooks/gitlab', { ...big, 'x-gitlab-token': GL_TOKEN }, 413, /larger than 1048576 bytes/],
      ['/api/builds', big, 401, /missing bearer token/],
      ['/api/builds', { ...big, authorization: 'Bearer wrong' }, 403, /wrong token/],
      ['/hooks/github', { ...big, 'x-github-event': 'push' }, 401, /missing X-Hub-Signature-256/],
      ['/hooks/github', { ...big, 'x-github-event': 'push', 'x-hub-signature-256': 'sha1=abc' }, 401, /malformed/],
      ['/hooks/github', { ...big, 'x-github-event': 'issues', 'x-hub-signature-256': forged }, 202, /event issues is not a push/],
      ['/hooks/github', { ...big, 'x-hub-signature-256': forged }, 400, /missing X-GitHub-Event/],
      ['/hooks/github', { ...big, 'x-github-event': 'push', 'x-hub-signature-256': forged }, 413, /larger than 1048576 bytes/],
    ];
    for (const [path, headers, expected, message] of cases) {
      const what = `${path} ${JSON.stringify(headers)}`;
      // The headers and 16 KiB of a 24 MiB body: the answer must come without the rest.
      const c = connection(Buffer.concat([Buffer.from(head(path, headers)), Buffer.alloc(16 * 1024, 'x')]));
      const h = await within(c.head, 2000, what);
      expect(status(h), what).toBe(expected);
      expect(h.toLowerCase(), what).toContain('connection: close');
      const { received, ms } = await within(c.closed, 2000, `${what} (close)`);
      expect(received, what).toMatch(message);
      expect(ms, what).toBeLessThan(2000);
    }
    expect(s.jobs).toHaveLength(0);
    expect((await s.snapshot()).pending).toBeNull();
  });

  it('Expect: 100-continue: a refused request is never asked for its body, an accepted one is', async () => {
    const refused = connection(head('/hooks/gitlab', { 'content-length': '5000', expect: '100-continue', 'x-gitlab-token': 'wrong' }));
    expect(status(await within(refused.head, 2000, 'refused'))).toBe(401);

    const body = JSON.stringify({ object_kind: 'note' });
    const accepted = connection(head('/hooks/gitlab', { 'content-length': String(body.length), expect: '100-continue', 'x-gitlab-token': GL_TOKEN }));
    expect(await within(accepted.head, 2000, 'continue')).toBe('HTTP/1.1 100 Continue');
    accepted.write(body);
    const end = await within(accepted.until(/object_kind note is not a push/), 2000, 'final answer');
    expect(end).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 Accepted/);
  });

  it(`reads at most ${HOOK_BODY_LIMIT} bytes of a GitHub body whatever its framing`, async () => {
    // Chunked: no declared length to refuse it by, so the cut comes while reading.
    const c = connection(head('/hooks/github', { 'transfer-encoding': 'chunked', 'x-github-event': 'push', 'x-hub-signature-256': forged }));
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    while (sent < 4 * MiB && c.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]))) {
      sent += chunk.length;
      await new Promise((r) => setImmediate(r));
    }
    expect(status(await within(c.head, 5000, 'chunked'))).toBe(413);
    expect((await within(c.closed, 5000, 'chunked close')).received).toMatch(/body larger than 1048576 bytes/);
    // A signed body under the limit still verifies.
    const ping = JSON.stringify({ zen: 'x'.repeat(HOOK_BODY_LIMIT - 100) });
    const r = await fetch(`${s.base}/hooks/github`, { method: 'POST', body: ping, headers: { 'x-github-event': 'ping', 'x-hub-signature-256': sign(ping) } });
    expect(r.status).toBe(200);
  });

  it(`reads at most ${UNVERIFIED_BODIES} unverified bodies at once (503 for more, at once); a stalled one is dropped after ${BODY_TIMEOUT_MS / 1000} s`, { timeout: 30_000 }, async () => {
    const started = Date.now();
    const stalled = Array.from({ length: UNVERIFIED_BODIES }, () =>
      connection(head('/hooks/github', { 'content-length': '1000', 'x-github-event': 'push', 'x-hub-signature-256': forged }) + '{"ref":'),
    );
    await new Promise((r) => setTimeout(r, 300)); // all of them in their body by now
    const ping = '{"zen":"hi"}';
    const one = () => fetch(`${s.base}/hooks/github`, { method: 'POST', body: ping, headers: { 'x-github-event': 'ping', 'x-hub-signature-256': sign(ping) } });
    const busy = await one();
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('10');
    expect(await busy.json()).toEqual({ error: `${UNVERIFIED_BODIES} unverified webhook bodies are being read already; try again` });
    for (const c of stalled) {
      expect(status(await within(c.head, BODY_TIMEOUT_MS + 3000, 'stalled body'))).toBe(408);
      await within(c.closed, 2000, 'stalled close');
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(BODY_TIMEOUT_MS - 100);
    expect((await one()).status).toBe(200); // the slots are free again
    expect(s.log()).toMatch(/refused a GitHub webhook: the body did not arrive within 10 s/);
  });
});

describe("farm serve: the server's own limits", () => {
  it(`drops a client that never finishes its headers (slowloris) within ${SERVER_LIMITS.headersTimeout / 1000 + 2} s, even one byte a second`, { timeout: 40_000 }, async () => {
    const c = connection(`POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nX-Slow: `);
    const drip = setInterval(() => c.write('a'), 1000);
    try {
      const { ms } = await within(c.closed, SERVER_LIMITS.headersTimeout + 5000, 'slowloris');
      expect(ms).toBeLessThan(SERVER_LIMITS.headersTimeout + 2000);
    } finally {
      clearInterval(drip);
    }
    // An idle keep-alive connection goes too.
    const idle = connection(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n\r\n`);
    expect(status(await within(idle.head, 2000, 'healthz'))).toBe(200);
    expect((await within(idle.closed, SERVER_LIMITS.keepAliveTimeout + 3000, 'keep-alive')).ms).toBeLessThan(SERVER_LIMITS.keepAliveTimeout + 2000);
  });

  it(`serves at most ${SERVER_LIMITS.maxConnections} connections at once`, async () => {
    const held = Array.from({ length: SERVER_LIMITS.maxConnections }, () => connection(''));
    await Promise.all(held.map((c) => new Promise((r) => (c.socket.readyState === 'open' ? r(null) : c.socket.once('connect', r)))));
    await new Promise((r) => setTimeout(r, 200));
    const extra = connection(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n\r\n`);
    const { received } = await within(extra.closed, 2000, 'over the limit');
    expect(received).toBe('');
    for (const c of held) c.socket.destroy();
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetch(`${s.base}/healthz`)).status).toBe(200);
  });
});

describe('refusals in the log', () => {
  it('a few a minute per kind; the next one says how many were left out', () => {
    const lines: string[] = [];
    let now = Date.parse('2025-01-01T00:00:00Z');
    const log = new QuietLog((l) => lines.push(l), () => now);
    for (let i = 0; i < 25; i++) log.line('refused-github', `refused ${i}`);
    log.line('host', 'another kind');
    expect(lines).toEqual([...Array.from({ length: 10 }, (_, i) => `refused ${i}`), 'another kind']);
    now += 60_000;
    log.line('refused-github', 'refused later');
    expect(lines.slice(11)).toEqual(['15 more refused-github line(s) in the minute from 2025-01-01T00:00:00.000Z not shown', 'refused later']);
  });
});
