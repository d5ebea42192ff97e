// A git source: the branch head seen cheaply with `git ls-remote`, and a work dir brought to it
// (clone, fetch, reset --hard, clean) only when no build reads it. git runs from argv arrays,
// never a shell, and never prompts: a source that needs credentials it does not have fails.

import { createHash } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FarmError } from '../core/errors.ts';
import { ProcessError, run, stderrTail } from '../core/process.ts';

const GIT_TIMEOUT_MS = 10 * 60_000; // a first clone of a big repository over a slow link

export interface GitRepoSource {
  url: string;
  branch: string;
}

export interface GitOptions {
  /** Where work dirs live (builds_dir/.service/git). */
  root: string;
  env?: NodeJS.ProcessEnv;
}

// What git needs beyond the minimal environment: ssh:// and git@ URLs authenticate with the agent
// (or the ssh command the operator chose), https:// ones may need a proxy. Cloud credentials stay out.
const GIT_PASS = ['SSH_AUTH_SOCK', 'GIT_SSH', 'GIT_SSH_COMMAND', 'HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];

/** The variables git runs with, set over the ones passed from `env`. */
export function gitEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return {
    GIT_TERMINAL_PROMPT: '0', // fail instead of asking for a password on a terminal nobody watches
    GIT_SSH_COMMAND: env.GIT_SSH_COMMAND ?? 'ssh -o BatchMode=yes',
    LC_ALL: 'C',
  };
}

export async function git(args: string[], opts: { cwd?: string | undefined; env?: NodeJS.ProcessEnv | undefined; signal?: AbortSignal | undefined }): Promise<string> {
  try {
    const r = await run(['git', ...args], {
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      envFrom: opts.env ?? process.env,
      pass: GIT_PASS,
      env: gitEnv(opts.env),
      ...(opts.signal ? { signal: opts.signal } : {}),
      timeoutMs: GIT_TIMEOUT_MS,
    });
    return r.stdout;
  } catch (err) {
    if (opts.signal?.aborted) throw new FarmError('ABORTED', 'cancelled');
    const detail = err instanceof ProcessError && err.result ? stderrTail(err.stderr) || err.message : (err as Error).message;
    throw new FarmError('STATE', `git ${args[0]} failed: ${detail}`, {
      hint: 'check service.source.git (url, branch) and that this host can read the repository',
      cause: err,
    });
  }
}

export class GitSource {
  /** The work dir the branch is checked out in. */
  readonly dir: string;

  constructor(
    readonly source: GitRepoSource,
    private readonly opts: GitOptions,
  ) {
    // One dir per (url, branch): a changed url never builds from a stale clone.
    const id = createHash('sha256').update(`${source.url}\n${source.branch}`).digest('hex').slice(0, 16);
    this.dir = join(opts.root, id);
  }

  /** The commit the remote branch points at, without fetching anything. */
  async remoteHead(signal?: AbortSignal): Promise<string> {
    const ref = `refs/heads/${this.source.branch}`;
    const out = await git(['ls-remote', '--heads', '--', this.source.url, ref], { env: this.opts.env, signal });
    const line = out.split('\n').find((l) => l.endsWith(`\t${ref}`));
    if (!line) throw new FarmError('STATE', `branch ${this.source.branch} not found in ${this.source.url}`, { hint: 'check service.source.git.branch' });
    return line.split('\t')[0]!;
  }

  /** Brings the work dir to the branch head (clone on first use) and returns the commit. */
  async sync(signal?: AbortSignal): Promise<string> {
    const o = { cwd: this.dir, env: this.opts.env, signal };
    if (!(await isRepo(this.dir))) {
      await rm(this.dir, { recursive: true, force: true });
      await mkdir(this.opts.root, { recursive: true });
      await git(['clone', '--quiet', '--no-tags', '--single-branch', '--branch', this.source.branch, '--', this.source.url, this.dir], { env: this.opts.env, signal });
    } else {
      await git(['fetch', '--quiet', '--no-tags', '--prune', 'origin', `+refs/heads/${this.source.branch}:refs/remotes/origin/${this.source.branch}`], o);
    }
    await git(['reset', '--quiet', '--hard', `refs/remotes/origin/${this.source.branch}`], o);
    // Files a build or an earlier commit left behind are not part of the source.
    await git(['clean', '--quiet', '-ffdx'], o);
    return (await git(['rev-parse', 'HEAD'], o)).trim();
  }
}

async function isRepo(dir: string): Promise<boolean> {
  return stat(join(dir, '.git')).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
