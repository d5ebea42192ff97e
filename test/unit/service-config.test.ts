import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InventoryError, loadInventory } from '../../src/inventory/load.ts';
import { serviceSettings, parseListen } from '../../src/service/config.ts';
import { parseDuration } from '../../src/service/duration.ts';

const KEY = 'SHA256:' + 'A'.repeat(43);
const BASE = `version: 1
source:
  containerfile: Containerfile
  context: ctx
workers:
  - name: builder-s390x
    host: 10.231.0.14
    arch: s390x
    host_key: "${KEY}"
`;

async function load(service: string) {
  const dir = await mkdtemp(join(tmpdir(), 'farm-svc-cfg-'));
  await writeFile(join(dir, 'Containerfile'), 'FROM scratch\n');
  await mkdir(join(dir, 'ctx')); // the context must not hold the builds dir (builds/ here)
  const file = join(dir, 'farm.yaml');
  await writeFile(file, BASE + service);
  return loadInventory(file);
}

async function problems(service: string) {
  const err = await load(service).then(() => undefined, (e: unknown) => e);
  if (!(err instanceof InventoryError)) throw new Error('expected an InventoryError');
  return err.problems.map((p) => `${p.field}: ${p.message} (fix: ${p.fix})`);
}

describe('service settings', () => {
  it('defaults: loopback listener, the inventory source polled every 60 s, FARM_TOKEN, cancel on shutdown', async () => {
    const loaded = await load('');
    const s = serviceSettings(loaded);
    expect(s.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(s.source).toEqual({ kind: 'path', containerfile: join(loaded.dir, 'Containerfile'), context: join(loaded.dir, 'ctx') });
    expect(s.pollMs).toBe(60_000);
    expect(s.watch).toBe(true);
    expect(s.debounceMs).toBe(2000);
    expect(s.tokenEnv).toBe('FARM_TOKEN');
    expect(s.onShutdown).toBe('cancel');
    expect(s.schedule).toBeUndefined();
    expect(s.inactivityMs).toBeUndefined();
    expect(s.stateDir).toBe(join(loaded.dir, 'builds', '.service'));
    expect(s.publicUrl).toBeUndefined();
    expect(s.notify.env).toEqual([]);
  });

  it('reads every setting', async () => {
    const loaded = await load(`service:
  listen: 0.0.0.0:9090
  public_url: https://farm.example.org/
  source:
    git: { url: "https://git.example.org/os/image.git", branch: stable, containerfile: os/Containerfile, context: os }
    poll_interval: 5m
  schedule: "0 3 * * 0"
  inactivity: 7d
  token_env: MY_FARM_TOKEN
  webhooks: { github_secret_env: GH_HOOK_SECRET, gitlab_token_env: GL_HOOK_TOKEN }
  notify: { webhook: "http://127.0.0.1:9/hook", command: [/usr/local/bin/announce, --json], env: [CHAT_TOKEN] }
  on_shutdown: finish
  arches: [s390x]
`);
    const s = serviceSettings(loaded, { listen: '127.0.0.1:0' });
    expect(s.listen).toEqual({ host: '127.0.0.1', port: 0 });
    expect(s.publicUrl).toBe('https://farm.example.org');
    expect(s.source).toEqual({ kind: 'git', url: 'https://git.example.org/os/image.git', branch: 'stable', containerfile: 'os/Containerfile', context: 'os' });
    expect(s.pollMs).toBe(300_000);
    expect(s.schedule).toBe('0 3 * * 0');
    expect(s.inactivityMs).toBe(7 * 86_400_000);
    expect(s.tokenEnv).toBe('MY_FARM_TOKEN');
    expect(s.githubSecretEnv).toBe('GH_HOOK_SECRET');
    expect(s.gitlabTokenEnv).toBe('GL_HOOK_TOKEN');
    expect(s.notify).toEqual({ webhook: 'http://127.0.0.1:9/hook', command: ['/usr/local/bin/announce', '--json'], env: ['CHAT_TOKEN'] });
    expect(s.onShutdown).toBe('finish');
    expect(s.arches).toEqual(['s390x']);
  });

  it('rejects a bad cron pattern, duration, listener, on_shutdown, public_url, notify.env and a password in the git URL', async () => {
    const found = await problems(`service:
  listen: localhost
  schedule: "61 * * * *"
  inactivity: 7 days
  on_shutdown: wait
  public_url: https://farm.example.org/status?x=1
  notify: { env: ["AWS_*"] }
  source:
    git: { url: "https://bot:hunter2@git.example.org/os.git" }
`);
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^service\.listen: .*host:port/),
        expect.stringMatching(/^service\.schedule: .*cron pattern/),
        expect.stringMatching(/^service\.inactivity: .*duration/),
        expect.stringMatching(/^service\.on_shutdown: /),
        expect.stringMatching(/^service\.source\.git\.url: no password in the URL/),
        expect.stringMatching(/^service\.public_url: .*an origin/),
        expect.stringMatching(/^service\.notify\.env\[0\]: .*the name of an environment variable/),
      ]),
    );
    expect(found.join('\n')).not.toContain('hunter2');
  });

  it('secrets only by the name of their environment variable', async () => {
    const found = await problems(`service:
  token_env: 0a1b2c-d3e4f5
  webhooks: { github_secret_env: GH_SECRET }
  notify: { webhook_token: abc }
`);
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^service\.token_env: 'token_env' names the environment variable that holds a secret/),
        expect.stringMatching(/^service\.notify\.webhook_token: 'webhook_token' looks like a secret/),
      ]),
    );
    expect(found.some((p) => p.startsWith('service.webhooks'))).toBe(false);
  });

  it('durations and listen addresses', () => {
    expect(parseDuration('60s')).toBe(60_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('2w')).toBe(14 * 86_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(() => parseDuration('7 days')).toThrow(/not a duration/);
    expect(parseListen('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(() => parseListen('127.0.0.1:99999')).toThrow(/host:port/);
  });
});
