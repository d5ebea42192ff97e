import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { defineCommand } from 'citty';
import { FarmError, errorMessage } from '../../errors.ts';
import type { Worker } from '../../inventory/schema.ts';
import { renderTable } from '../../ui/table.ts';
import { connectWorker } from '../../../workers/ssh/session.ts';
import { scanHostKey, trustHostKey } from '../../../workers/ssh/hostkeys.ts';
import { probeWorker } from '../../../workers/probe.ts';
import { inventoryArg, loadFromArgs } from '../inventory-arg.ts';
import { selectArches } from '../../build/job.ts';
import { err, io, out } from '../io.ts';

const check = defineCommand({
  meta: { name: 'check', description: 'Probe every worker: SSH, arch, podman, free space, builder image' },
  args: {
    ...inventoryArg,
    arch: { type: 'string', default: 'all', description: 'Only workers of these arches', valueHint: 'LIST' },
  },
  async run({ args }) {
    const loaded = await loadFromArgs(args);
    const arches = selectArches(args.arch, loaded);
    const workers = loaded.inventory.workers.filter((w) => arches.includes(w.arch));
    const { signal } = io();
    const s = loaded.inventory.settings;
    const rows = await Promise.all(
      workers.map(async (w): Promise<string[]> => {
        try {
          const t = await connectWorker(w, { signal, connectTimeoutMs: s.connect_timeout_s * 1000 });
          try {
            const p = await probeWorker(t, loaded.inventory, signal);
            const facts = `podman ${p.podmanVersion ?? '?'}, free ${p.freeGiB.storage ?? '?'}/${p.freeGiB.output ?? '?'} GiB, builder ${p.builderImage ?? '?'}`;
            return [w.name, w.arch, `${w.host}:${w.port}`, p.healthy ? 'healthy' : 'UNHEALTHY', p.healthy ? facts : p.problems.join('; ')];
          } finally {
            await t.close();
          }
        } catch (e) {
          const hint = e instanceof FarmError && e.hint ? ` (${e.hint})` : '';
          return [w.name, w.arch, `${w.host}:${w.port}`, 'UNREACHABLE', errorMessage(e) + hint];
        }
      }),
    );
    out(renderTable(['WORKER', 'ARCH', 'ADDRESS', 'STATUS', 'DETAILS'], rows));
    if (rows.some((r) => r[3] !== 'healthy')) io().exitCode = 1;
  },
});

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: io().stdin, output: io().stderr, terminal: false });
  try {
    const answer = await rl.question(question);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

function knownHostsFile(worker: Worker): string {
  return worker.known_hosts ?? join(io().env.HOME ?? homedir(), '.ssh', 'known_hosts');
}

const trust = defineCommand({
  meta: { name: 'trust', description: "Record a worker's SSH host key after you confirm its fingerprint" },
  args: {
    ...inventoryArg,
    name: { type: 'positional', description: 'Worker name', required: true },
    yes: { type: 'boolean', alias: 'y', description: 'Trust without asking (only after checking the fingerprint out of band)' },
  },
  async run({ args }) {
    const loaded = await loadFromArgs(args);
    const worker = loaded.inventory.workers.find((w) => w.name === args.name);
    if (!worker) {
      throw new FarmError('USAGE', `no worker named '${args.name}' in ${loaded.file}`, {
        hint: `workers are: ${loaded.inventory.workers.map((w) => w.name).join(', ')}`,
      });
    }
    const key = await scanHostKey(worker);
    err(`${worker.name} (${worker.host}:${worker.port}) presents ${key.keyType} ${key.fingerprint}`);
    if (worker.host_key) {
      err(
        worker.host_key === key.fingerprint
          ? 'this matches the host_key pinned in the inventory; nothing to do'
          : `the inventory pins host_key ${worker.host_key}; if the new key is expected, set host_key: ${key.fingerprint}`,
      );
      if (worker.host_key !== key.fingerprint) io().exitCode = 1;
      return;
    }
    const file = knownHostsFile(worker);
    if (!args.yes && !(await confirm(`Trust this key and add it to ${file}? [y/N] `))) {
      err('not trusted; nothing changed');
      io().exitCode = 1;
      return;
    }
    await trustHostKey(worker, file, key.blob, key.keyType);
    out(`trusted ${worker.name}: ${key.keyType} ${key.fingerprint} added to ${file}`);
  },
});

export default defineCommand({
  meta: { name: 'workers', description: 'Check workers or trust their SSH host keys' },
  subCommands: { check, trust },
});
