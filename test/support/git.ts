// A git "server" for tests: a bare repository in a temp dir (what `farm serve` clones and polls)
// and a working clone that commits and pushes to it, as a developer would.

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'farm test',
  GIT_AUTHOR_EMAIL: 'farm-test@example.invalid',
  GIT_COMMITTER_NAME: 'farm test',
  GIT_COMMITTER_EMAIL: 'farm-test@example.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_TERMINAL_PROMPT: '0',
};

export async function git(cwd: string, args: string[]): Promise<string> {
  const { stdout } = await run('git', args, { cwd, env: ENV });
  return stdout.trim();
}

export interface TestRepo {
  /** The bare repository: the URL to give `farm serve`. */
  url: string;
  branch: string;
  work: string;
  /** Writes the files, commits them and pushes; returns the new commit. */
  commit(files: Record<string, string>, message: string): Promise<string>;
  head(): Promise<string>;
}

export async function createRepo(files: Record<string, string>, branch = 'main'): Promise<TestRepo> {
  const root = await mkdtemp(join(tmpdir(), 'farm-git-'));
  const url = join(root, 'origin.git');
  const work = join(root, 'work');
  await run('git', ['init', '--quiet', '--bare', '--initial-branch', branch, url], { env: ENV });
  await run('git', ['init', '--quiet', '--initial-branch', branch, work], { env: ENV });
  await git(work, ['remote', 'add', 'origin', url]);
  const repo: TestRepo = {
    url,
    branch,
    work,
    async commit(changes, message) {
      for (const [path, text] of Object.entries(changes)) {
        await mkdir(dirname(join(work, path)), { recursive: true });
        await writeFile(join(work, path), text);
      }
      await git(work, ['add', '--all']);
      await git(work, ['commit', '--quiet', '-m', message]);
      await git(work, ['push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`]);
      return git(work, ['rev-parse', 'HEAD']);
    },
    head: () => git(work, ['rev-parse', 'HEAD']),
  };
  await repo.commit(files, 'initial');
  return repo;
}
