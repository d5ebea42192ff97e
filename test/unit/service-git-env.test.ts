// git runs through src/core/process.ts: the farm's cloud credentials never reach it, or anything
// it starts (ssh for ssh:// sources, credential helpers, hooks). A git alias that runs `env` shows
// what git and its children see.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { git } from '../../src/service/git.ts';

const SECRETS = { AWS_SECRET_ACCESS_KEY: 'aws-marker', OS_PASSWORD: 'os-marker', IBMCLOUD_API_KEY: 'ibm-marker', FARM_TOKEN: 'token-marker' };

describe('git child environment', () => {
  beforeEach(() => Object.assign(process.env, SECRETS, { SSH_AUTH_SOCK: '/tmp/farm-agent.sock' }));
  afterEach(() => {
    for (const k of [...Object.keys(SECRETS), 'SSH_AUTH_SOCK']) delete process.env[k];
  });

  it('has what git needs (no prompts, the agent for ssh) and none of the secrets', async () => {
    const out = await git(['-c', 'alias.farmenv=!env', 'farmenv'], {});
    for (const [name, value] of Object.entries(SECRETS)) {
      expect(out).not.toContain(name);
      expect(out).not.toContain(value);
    }
    expect(out).toMatch(/^GIT_TERMINAL_PROMPT=0$/m);
    expect(out).toMatch(/^GIT_SSH_COMMAND=ssh -o BatchMode=yes$/m);
    expect(out).toMatch(/^SSH_AUTH_SOCK=\/tmp\/farm-agent.sock$/m);
  });

  it('reports a failure with the end of git\'s stderr', async () => {
    await expect(git(['rev-parse', 'HEAD'], { cwd: '/' })).rejects.toMatchObject({ code: 'STATE', message: expect.stringMatching(/^git rev-parse failed: .*not a git repository/) });
  });
});
