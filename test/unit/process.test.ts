// src/core/process.ts against real programs (sh, sleep, cat): the environment a child sees, quoting,
// timeouts, cancellation and the errors.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { ProcessError, childEnv, run, start } from '../../src/core/process.ts';

/** Whether pid is a live process (a zombie waiting for a parent that does not reap is not). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/^\d+ \(.*\) Z /.test(stat);
}

const MARKERS = ['FARM_TEST_MARKER', 'AWS_SECRET_ACCESS_KEY', 'OS_PASSWORD', 'IBMCLOUD_API_KEY'];

describe('the child environment', () => {
  beforeEach(() => {
    for (const m of MARKERS) process.env[m] = `leaked-${m}`;
  });
  afterEach(() => {
    for (const m of MARKERS) delete process.env[m];
  });

  it('keeps secrets in the farm\'s environment from a child that was not given them', async () => {
    const { stdout } = await run(['env']);
    for (const m of MARKERS) expect(stdout).not.toContain(`leaked-${m}`);
    // the base a program needs to run at all does arrive
    expect(stdout).toMatch(/^PATH=/m);
    expect(stdout).toMatch(/^HOME=/m);
  });

  it('passes exactly the names a call asks for, and what it sets', async () => {
    const { stdout } = await run(['env'], { pass: ['FARM_TEST_MARKER'], env: { LC_ALL: 'C' } });
    expect(stdout).toContain('FARM_TEST_MARKER=leaked-FARM_TEST_MARKER');
    expect(stdout).toMatch(/^LC_ALL=C$/m);
    expect(stdout).not.toContain('leaked-AWS_SECRET_ACCESS_KEY');
  });

  it('builds the minimal set from any source environment', () => {
    const env = childEnv({ PATH: '/bin', HOME: '/h', LANG: 'C.UTF-8', LC_TIME: 'C', TMPDIR: '/t', SECRET: 's', SSH_AUTH_SOCK: '/a' }, ['SSH_AUTH_SOCK'], { X: '1', HOME: undefined });
    expect(env).toEqual({ PATH: '/bin', LANG: 'C.UTF-8', LC_TIME: 'C', TMPDIR: '/t', SSH_AUTH_SOCK: '/a', X: '1' });
  });
});

describe('running', () => {
  it('hands every argv word over as it is, with no shell reading it', async () => {
    const words = ['$(touch /tmp/farm-process-pwned)', '`id`', "it's", 'a b', '*', '', 'x\ny', '$HOME'];
    const { stdout } = await run(['printf', '%s\\0', ...words]);
    expect(stdout.split('\0').slice(0, -1)).toEqual(words);
  });

  it('feeds input on stdin, and gives an empty stdin otherwise', async () => {
    expect((await run(['cat'], { input: 'payload' })).stdout).toBe('payload');
    expect((await run(['cat'], { timeoutMs: 5000 })).stdout).toBe('');
  });

  it('reports a non-zero exit with the end of stderr in a typed error', async () => {
    const err = await run(['sh', '-c', 'echo first >&2; echo why it failed >&2; exit 3'], { code: 'UPLOAD', what: 'tool' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessError);
    expect(err).toMatchObject({ code: 'UPLOAD', message: 'tool exited with code 3: first; why it failed' });
    expect((err as ProcessError).result?.code).toBe(3);
  });

  it('names a program that is not installed', async () => {
    await expect(run(['farm-no-such-program-xyz'])).rejects.toThrow(/farm-no-such-program-xyz is not installed/);
  });

  it('ends a program that outlives its timeout, with what it started', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farm-process-'));
    try {
      const t0 = Date.now();
      // the grandchild writes its pid; the timeout must end it too (process group)
      const err = await run(['sh', '-c', `sleep 30 & echo $! > ${dir}/pid; wait`], { timeoutMs: 1500 }).catch((e: unknown) => e);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(err).toBeInstanceOf(ProcessError);
      expect((err as Error).message).toMatch(/timed out after 1.5 s/);
      const pid = Number(await readFile(join(dir, 'pid'), 'utf8'));
      await new Promise((r) => setTimeout(r, 100));
      expect(await running(pid)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops on the AbortSignal with ABORTED', async () => {
    const ac = new AbortController();
    const p = run(['sleep', '30'], { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FarmError);
    expect((err as FarmError).code).toBe('ABORTED');
    const pre = new AbortController();
    pre.abort();
    await expect(run(['sleep', '30'], { signal: pre.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('streams stdout live and reports a kill by signal', async () => {
    const seen: string[] = [];
    const s = start(['sh', '-c', 'echo one; sleep 30'], { onStdout: (d) => seen.push(d.toString()) });
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 20));
    s.kill();
    const r = await s.done;
    expect(seen.join('')).toBe('one\n');
    expect(r).toMatchObject({ code: null, signal: 'SIGTERM', timedOut: false });
  });
});
