// The source watcher's change detection against real files and a real git repository (local).

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/service/clock.ts';
import { GitSource } from '../../src/service/git.ts';
import { ServiceStore, type Reason } from '../../src/service/store.ts';
import { SourceWatcher, gitCheck, pathCheck } from '../../src/service/watch.ts';
import { createRepo } from '../support/git.ts';

const KEY = 'SHA256:' + 'A'.repeat(43);
const never = new AbortController().signal;

describe('source change detection', () => {
  it('a local source: first check, then only when the files change', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'farm-watch-'));
    await writeFile(join(dir, 'Containerfile'), 'FROM localhost/base:latest\n');
    await writeFile(join(dir, 'motd'), 'hello\n');
    // The builds dir is outside the context (an inventory whose context holds it is refused).
    await writeFile(join(dir, 'farm.yaml'), `version: 1\nsource: { containerfile: Containerfile }\nsettings: { builds_dir: ../${basename(dir)}-builds }\nworkers: [{ name: w, host: 10.231.0.14, arch: s390x, host_key: "${KEY}" }]\n`);
    const store = await ServiceStore.open(join(`${dir}-builds`, '.service'));
    const check = pathCheck(join(dir, 'farm.yaml'), store, 'all');
    expect(await check(never)).toEqual({ detail: 'first check of the source' });
    expect(await check(never)).toBeUndefined();
    // Records written under builds_dir are not source.
    await writeFile(join(`${dir}-builds`, 'notes.txt'), 'x');
    expect(await check(never)).toBeUndefined();
    await writeFile(join(dir, 'motd'), 'hello again\n');
    expect(await check(never)).toEqual({ detail: 'source files changed' });
    expect(await check(never)).toBeUndefined();
    // The last key seen survives a restart.
    const reopened = await ServiceStore.open(join(`${dir}-builds`, '.service'));
    expect(await pathCheck(join(dir, 'farm.yaml'), reopened, 'all')(never)).toBeUndefined();
  });

  it('a git branch: ls-remote sees a new head; sync brings the work dir to it', async () => {
    const repo = await createRepo({ 'Containerfile': 'FROM localhost/base:latest\n' });
    const root = await mkdtemp(join(tmpdir(), 'farm-watch-git-'));
    const store = await ServiceStore.open(root);
    const git = new GitSource({ url: repo.url, branch: repo.branch }, { root: join(root, 'git') });
    const check = gitCheck(git, store);
    const first = await repo.head();
    expect(await git.remoteHead()).toBe(first);
    expect(await check(never)).toEqual({ detail: `main at ${first.slice(0, 12)} (first check)`, commit: first });
    expect(await check(never)).toBeUndefined(); // submitted already, not yet built
    expect(await git.sync()).toBe(first);
    await store.update((s) => {
      s.source.gitHead = first;
    });
    expect(await check(never)).toBeUndefined();

    const second = await repo.commit({ 'Containerfile': 'FROM localhost/base:latest\nRUN true\n' }, 'change');
    expect(await check(never)).toEqual({ detail: `main moved to ${second.slice(0, 12)} (from ${first.slice(0, 12)})`, commit: second });
    // A file left in the work dir by anything is gone after the next sync.
    await writeFile(join(git.dir, 'stray'), 'x');
    expect(await git.sync()).toBe(second);
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(git.dir, 'stray'))).toBe(false);

    await expect(new GitSource({ url: repo.url, branch: 'nope' }, { root: join(root, 'git') }).remoteHead()).rejects.toThrow(/branch nope not found/);
    await expect(new GitSource({ url: join(root, 'missing.git'), branch: 'main' }, { root: join(root, 'git') }).remoteHead()).rejects.toThrow(/git ls-remote failed/);
  });

  it('the watcher polls on the clock and logs a failing source once, not every poll', async () => {
    const clock = new ManualClock();
    const logs: string[] = [];
    const submitted: Reason[] = [];
    let calls = 0;
    const watcher = new SourceWatcher({
      clock,
      intervalMs: 60_000,
      check: async () => {
        calls++;
        if (calls <= 3) throw new Error('unreachable');
        return calls === 4 ? { detail: 'changed' } : undefined;
      },
      submit: (r) => submitted.push(r),
      log: (l) => logs.push(l),
    });
    watcher.start();
    await clock.advance(0);
    await vi.waitFor(() => expect(calls).toBe(1));
    for (let n = 2; n <= 5; n++) {
      await vi.waitFor(() => expect(clock.pending).toBe(1)); // the next poll is armed
      await clock.advance(60_000);
      await vi.waitFor(() => expect(calls).toBe(n));
    }
    expect(logs).toEqual(['source check failed (retrying every 60 s): unreachable', 'source check works again']);
    expect(submitted).toEqual([expect.objectContaining({ kind: 'source', detail: 'changed', force: false })]);
    await watcher.stop();
  });
});
