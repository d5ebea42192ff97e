// A worker's SSH credentials: its identity_file, else the ssh-agent. The farm never prompts, so a
// key protected by a passphrase is refused with the way out (the agent).

import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { FarmError, errorMessage } from '../../src/core/errors.ts';
import type { WorkerEndpoint as Worker } from '../endpoint.ts';

export type Auth = { privateKey: Buffer; identity: string } | { agent: string };

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

/** The credentials for a worker: its identity_file, else the ssh-agent. Never prompts. */
export async function loadAuth(worker: Worker): Promise<Auth> {
  if (worker.identity_file) {
    const path = expandHome(worker.identity_file);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      throw new FarmError('SSH', `cannot read identity_file ${path} of worker ${worker.name}: ${errorMessage(err)}`);
    }
    const parsed = ssh2.utils.parseKey(data);
    if (parsed instanceof Error) {
      if (/encrypted|passphrase/i.test(parsed.message)) {
        throw new FarmError('SSH', `identity_file ${path} of worker ${worker.name} is protected by a passphrase, and farm never prompts for one`, {
          hint: 'load the key into ssh-agent (ssh-add) and drop identity_file so the agent is used, or use a dedicated key without a passphrase (mode 0600)',
        });
      }
      throw new FarmError('SSH', `identity_file ${path} of worker ${worker.name} is not a usable private key: ${parsed.message}`);
    }
    return { privateKey: data, identity: path };
  }
  const agent = process.env.SSH_AUTH_SOCK;
  if (!agent) {
    throw new FarmError('SSH', `no SSH credentials for worker ${worker.name}: it has no identity_file and SSH_AUTH_SOCK is not set`, {
      hint: 'set identity_file for the worker in the inventory, or start ssh-agent and ssh-add the key',
    });
  }
  return { agent };
}

/** How messages name the credentials that were refused. */
export function describeAuth(auth: Auth): string {
  return 'identity' in auth ? `identity_file ${auth.identity}` : `the keys in ssh-agent (${auth.agent})`;
}
