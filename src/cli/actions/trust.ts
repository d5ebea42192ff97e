// `farm workers trust NAME`: record a worker's host key after the user confirms its fingerprint.
// A host that has a key recorded gets no other one (workers/ssh/trust.ts trustCheck).

import { createInterface } from 'node:readline';
import type { CommandContext } from 'citty';
import { FarmError } from '../../core/errors.ts';
import { knownHostsFile, scanHostKey, type HostKey } from '../../core/hostkeys.ts';
import { examineForTrust, trustHostKey } from '../../../workers/ssh/trust.ts';
import type { trustArgs } from '../commands/workers.ts';
import { err, io, out } from '../io.ts';
import { loadFromArgs } from './args.ts';

/** A line from stdin; false at its end (nobody there to say yes). */
function confirm(question: string): Promise<boolean> {
  const { stdin, stderr } = io();
  stderr.write(question);
  const rl = createInterface({ input: stdin, terminal: false });
  return new Promise((resolve) => {
    rl.once('line', (answer) => resolve(/^y(es)?$/i.test(answer.trim())));
    rl.once('close', () => resolve(false));
  }).finally(() => rl.close()) as Promise<boolean>;
}

type Status = 'added' | 'already trusted' | 'matches host_key' | 'differs from host_key' | 'declined';

export async function trust({ args }: CommandContext<typeof trustArgs>): Promise<void> {
  // Only names and addresses are needed: the known_hosts file may not exist yet (it is made here).
  const loaded = await loadFromArgs(args, { checkFiles: false });
  const worker = loaded.inventory.workers.find((w) => w.name === args.name);
  if (!worker) {
    throw new FarmError('USAGE', `no worker named '${args.name}' in ${loaded.file}`, {
      hint: `workers are: ${loaded.inventory.workers.map((w) => w.name).join(', ')}`,
    });
  }
  const { signal, env } = io();
  const who = `${worker.name} (${worker.host}:${worker.port})`;
  const report = (status: Status, key: HostKey, file?: string) => {
    if (args.json) {
      const { name, host, port } = worker;
      out(JSON.stringify({ worker: name, host, port, keyType: key.keyType, fingerprint: key.fingerprint, ...(file ? { file } : {}), status }, null, 2));
    }
    if (status === 'declined' || status === 'differs from host_key') io().exitCode = 1;
  };

  if (worker.host_key) {
    const key = await scanHostKey(worker, { signal });
    const same = worker.host_key === key.fingerprint;
    err(`${who} presents ${key.keyType} ${key.fingerprint}`);
    err(same ? 'this matches the host_key pinned in the inventory; nothing to do' : `the inventory pins host_key ${worker.host_key}; if the new key is expected, set host_key: ${key.fingerprint}`);
    return report(same ? 'matches host_key' : 'differs from host_key', key);
  }

  const file = knownHostsFile(worker, env.HOME);
  const found = await examineForTrust(worker, file, { signal });
  const key = found.presented;
  if (found.status === 'trusted') {
    if (!args.json) out(`already trusted: ${who} presents ${key.keyType} ${key.fingerprint}, recorded in ${file} line ${found.entry.line}`);
    return report('already trusted', key, file);
  }
  err(`${who} presents ${key.keyType} ${key.fingerprint}`);
  if (!args.yes && !(await confirm(`Trust this key and add it to ${file}? [y/N] `))) {
    err('not trusted; nothing changed');
    return report('declined', key, file);
  }
  const added = await trustHostKey(worker, file, key.blob, key.keyType);
  if (!args.json) {
    out(added === 'added' ? `trusted ${worker.name}: ${key.keyType} ${key.fingerprint} added to ${file}` : `already trusted: ${key.keyType} ${key.fingerprint} is in ${file}`);
  }
  report(added === 'added' ? 'added' : 'already trusted', key, file);
}
