// Pools: resalloc's resource data as Copr's backend reads it, the scheduler's static-first choice,
// pool settings in the inventory, and the resalloc and command providers against small scripts
// that honour the contract (the lab's stand-in is exercised in test/integration/pools.test.ts).

import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inventorySchema, type Pool, type Worker } from '../../src/inventory/schema.ts';
import { poolDemand } from '../../src/pipeline/scheduler.ts';
import { parseResourceData } from '../../workers/pools/data.ts';
import { CommandProvider, ResallocProvider } from '../../workers/pools/resalloc.ts';
import { sizeBytes } from '../../workers/prepare.ts';

const W = 'resalloc ticket 7 (arch_x86_64)';

describe('resalloc resource data', () => {
  it('one line with a host name or address', () => {
    expect(parseResourceData('10.0.0.5\n', W)).toEqual({ host: '10.0.0.5' });
    expect(parseResourceData('\nbuilder-x86.example.org', W)).toEqual({ host: 'builder-x86.example.org' });
    expect(parseResourceData('2001:db8::5', W)).toEqual({ host: '2001:db8::5' });
  });

  it('YAML starting with --- with host and an optional ssh_port', () => {
    expect(parseResourceData('---\nhost: 10.0.0.6\nssh_port: 2222\n', W)).toEqual({ host: '10.0.0.6', port: 2222 });
    expect(parseResourceData('---\nhost: vm.example\n', W)).toEqual({ host: 'vm.example' });
    expect(parseResourceData("---\nhost: '[2001:db8::6]'\nssh_port: '22'\n", W)).toEqual({ host: '2001:db8::6', port: 22 });
  });

  it('refuses what is not a host, naming the ticket', () => {
    expect(() => parseResourceData('', W)).toThrow(/resalloc ticket 7 \(arch_x86_64\) printed no resource data/);
    expect(() => parseResourceData('a\nb', W)).toThrow(/expected one line with a host/);
    expect(() => parseResourceData('-oProxyCommand=x', W)).toThrow(/expected one line/);
    expect(() => parseResourceData('host with space', W)).toThrow(/expected one line/);
    expect(() => parseResourceData('---\nssh_port: 22\n', W)).toThrow(/without a usable host/);
    expect(() => parseResourceData('---\nhost: h\nssh_port: 70000\n', W)).toThrow(/not a port number/);
    expect(() => parseResourceData('---\n[1, 2]\n', W)).toThrow(/not a mapping/);
  });
});

function inv(workers: unknown[], pools: unknown[]) {
  return inventorySchema.parse({ version: 1, source: { containerfile: 'Containerfile' }, workers, pools });
}
const resalloc = (tag: string) => ({ provider: 'resalloc', tags: [tag] });

describe('static workers first, then pools', () => {
  const i = inv(
    [
      { name: 'x1', host: 'x1', arch: 'x86_64' },
      { name: 'p1', host: 'p1', arch: 'ppc64le' },
    ],
    [
      { name: 'rx', arch: 'x86_64', settings: resalloc('arch_x86_64') },
      { name: 'rp', arch: 'ppc64le', settings: resalloc('arch_ppc64le'), prefer: 'pool', max: 2 },
      { name: 'ra', arch: 'aarch64', settings: resalloc('arch_aarch64'), max: 3 },
      { name: 'ra2', arch: 'aarch64', settings: resalloc('arch_aarch64'), prefer: 'pool' },
    ],
  );
  const arches = (runs: number) =>
    (['x86_64', 'ppc64le', 'aarch64', 's390x'] as const).map((arch) => ({ arch, pools: i.pools.filter((p: Pool) => p.arch === arch), runs: Array(runs).fill(0) }));
  const byName = (...names: string[]): Worker[] => i.workers.filter((w) => names.includes(w.name));

  it('an arch with a healthy static worker takes no VM; one without does', () => {
    const d = poolDemand(arches(1), byName('x1'));
    expect(d.map((x) => [x.arch, x.pools.map((p) => p.name), x.count, x.staticFallback])).toEqual([
      ['ppc64le', ['rp'], 1, false],
      ['aarch64', ['ra2', 'ra'], 1, false],
    ]);
  });

  it('an unhealthy static worker is no reason to skip the pool', () => {
    expect(poolDemand(arches(1), []).map((x) => x.arch)).toEqual(['x86_64', 'ppc64le', 'aarch64']);
  });

  it('prefer: pool takes the VM first and keeps the static worker as the fallback', () => {
    const d = poolDemand(arches(1), byName('x1', 'p1'));
    expect(d).toHaveLength(2);
    expect(d[0]).toMatchObject({ arch: 'ppc64le', count: 1, staticFallback: true });
  });

  it('parallel builder runs take more VMs, up to the pools’ max', () => {
    const d = poolDemand(arches(3), byName('x1'));
    expect(d.find((x) => x.arch === 'ppc64le')!.count).toBe(2);
    expect(d.find((x) => x.arch === 'aarch64')!.count).toBe(3);
  });
});

describe('pool settings', () => {
  it('defaults: resalloc client, 30 min wait, one VM, static first', () => {
    const p = inv([], [{ name: 'r', arch: 's390x', settings: resalloc('arch_s390x_native') }]).pools[0]!;
    expect(p).toMatchObject({ max: 1, prefer: 'static', lifetime: '6h', settings: { command: ['resalloc'], wait_timeout: '30m', user: 'root', port: 22 } });
  });
  it('refuses an unknown provider and a bad duration', () => {
    const r = inventorySchema.safeParse({ version: 1, source: { containerfile: 'C' }, pools: [{ name: 'r', arch: 'x86_64', settings: { provider: 'nope' } }] });
    expect(r.success).toBe(false);
    const d = inventorySchema.safeParse({ version: 1, source: { containerfile: 'C' }, pools: [{ name: 'r', arch: 'x86_64', settings: { ...resalloc('t'), wait_timeout: '5 minutes' } }] });
    expect(d.success).toBe(false);
  });
  it('sizes as mount takes them', () => {
    expect(sizeBytes('3G')).toBe(3 * 1024 ** 3);
    expect(sizeBytes('3145728k')).toBe(3 * 1024 ** 3);
    expect(() => sizeBytes('3 GB')).toThrow(/use a number/);
  });
});

/** A resalloc client honouring the contract, logging its calls; ticket-wait sleeps $WAIT_S. */
async function fakeClient(): Promise<{ argv: string[]; log: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'farm-resalloc-'));
  const log = join(dir, 'calls');
  const bin = join(dir, 'resalloc');
  await writeFile(
    bin,
    `#!/bin/bash
echo "$*" >>${log}
[[ $1 == --connection ]] && shift 2
case $1 in
  ticket) echo 42 ;;
  ticket-wait) sleep "\${WAIT_S:-0}"; printf -- '---\\nhost: 10.9.9.9\\nssh_port: 2200\\n' ;;
  ticket-close) ;;
esac
`,
  );
  await chmod(bin, 0o755);
  return { argv: [bin], log };
}

describe('resalloc provider', () => {
  const settings = { user: 'root', port: 22, tags: ['arch_x86_64', 'fast'], wait_timeout_s: 2, connection: 'http://resalloc.example:49100' };

  it('tickets with every tag, waits, reads the data, closes', async () => {
    const c = await fakeClient();
    const p = new ResallocProvider('rx', { ...settings, command: c.argv });
    const a = await p.allocate(new AbortController().signal);
    expect(a).toMatchObject({ id: '42', endpoint: { host: '10.9.9.9', port: 2200, user: 'root' } });
    await p.release(a);
    expect((await readFile(c.log, 'utf8')).trim().split('\n')).toEqual([
      '--connection http://resalloc.example:49100 ticket --tag arch_x86_64 --tag fast',
      '--connection http://resalloc.example:49100 ticket-wait 42',
      '--connection http://resalloc.example:49100 ticket-close 42',
    ]);
  });

  it('a wait past its bound closes the ticket and names ticket and tags', async () => {
    const c = await fakeClient();
    process.env.WAIT_S = '30';
    try {
      const p = new ResallocProvider('rx', { ...settings, command: c.argv, pass_env: ['WAIT_S'] });
      await expect(p.allocate(new AbortController().signal)).rejects.toThrow('resalloc ticket 42 (tags arch_x86_64, fast) of pool rx not ready after 2 s; the ticket was closed');
      expect(await readFile(c.log, 'utf8')).toMatch(/ticket-close 42\n$/);
    } finally {
      delete process.env.WAIT_S;
    }
  });
});

describe('command provider', () => {
  it('allocate prints the data; release gets the id and the data', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farm-cmdpool-'));
    const out = join(dir, 'released');
    const p = new CommandProvider('cp', {
      user: 'core',
      port: 22,
      timeout_s: 10,
      allocate: ['printf', '---\nid: vm-7\nhost: vm7.example\n'],
      release: ['bash', '-c', `{ echo "$1"; cat; } >${out}`, 'release'],
    });
    const a = await p.allocate(new AbortController().signal);
    expect(a).toMatchObject({ id: 'vm-7', endpoint: { host: 'vm7.example', port: 22, user: 'core' } });
    await p.release(a);
    expect(await readFile(out, 'utf8')).toBe('vm-7\n---\nid: vm-7\nhost: vm7.example');
  });
});

describe('farm workers check with pools', () => {
  it('checks each pool’s allocator program without taking a VM', async () => {
    const { cli } = await import('../support/cli.ts');
    const dir = await mkdtemp(join(tmpdir(), 'farm-poolcheck-'));
    await mkdir(join(dir, 'ctx'));
    await writeFile(join(dir, 'ctx', 'Containerfile'), 'FROM scratch\n');
    await writeFile(join(dir, 'known_hosts'), '');
    await writeFile(
      join(dir, 'farm.yaml'),
      `version: 1
source: { containerfile: ctx/Containerfile, context: ctx }
pools:
  - { name: here, arch: x86_64, settings: { provider: command, allocate: [sh, -c, 'echo h'], release: ['true'], known_hosts: known_hosts } }
  - { name: missing, arch: s390x, settings: { provider: resalloc, command: [./no-such-resalloc], tags: [arch_s390x_native], known_hosts: known_hosts } }
`,
    );
    const r = await cli(['workers', 'check', '--json', '--inventory', join(dir, 'farm.yaml')]);
    expect(r.code).toBe(1);
    const reports = JSON.parse(r.stdout) as Array<{ name: string; healthy: boolean; problems: string[] }>;
    expect(reports.map((x) => [x.name, x.healthy])).toEqual([
      ['here', true],
      ['missing', false],
    ]);
    expect(reports[1]!.problems[0]).toBe(`resalloc program ${join(dir, 'no-such-resalloc')} is not an executable file: install it (dnf install resalloc) or fix pools.missing.settings`);
  });
});
