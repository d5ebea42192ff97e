import { defineCommand } from 'citty';
import { parseArchList, type Arch } from '../../arch.ts';
import { FarmError } from '../../errors.ts';
import { inventoryArches } from '../../plan/plan.ts';
import { runBuild } from '../../build/run-build.ts';
import { Reporter } from '../../ui/reporter.ts';
import { renderSummary } from '../../ui/summary.ts';
import { connectWorker } from '../../../workers/ssh/session.ts';
import { inventoryArg, loadFromArgs } from '../inventory-arg.ts';
import { io, out } from '../io.ts';

export function selectArches(spec: string, available: Arch[]): Arch[] {
  if (spec.trim() === 'all') return available;
  try {
    return parseArchList(spec);
  } catch (err) {
    throw new FarmError('USAGE', (err as Error).message);
  }
}

export default defineCommand({
  meta: { name: 'build', description: 'Build the Containerfile into disk images on native workers, fetch and verify them' },
  args: {
    ...inventoryArg,
    arch: { type: 'string', default: 'all', description: 'Arches to build: all, or a list such as x86_64,s390x', valueHint: 'LIST' },
    json: { type: 'boolean', description: 'Print the manifest (builds[], artifact ids) as JSON on stdout' },
    quiet: { type: 'boolean', alias: 'q', description: 'Keep builder output out of the terminal (it still goes to the log files)' },
  },
  async run({ args }) {
    const loaded = await loadFromArgs(args);
    const arches = selectArches(args.arch, inventoryArches(loaded));
    const { stderr, signal } = io();
    const reporter = new Reporter({ stream: stderr, verbose: !args.quiet });
    const s = loaded.inventory.settings;
    const outcome = await runBuild({
      loaded,
      arches,
      signal,
      reporter,
      connect: (worker, o) =>
        connectWorker(worker, { signal: o.signal, connectTimeoutMs: s.connect_timeout_s * 1000, keepaliveIntervalMs: s.keepalive_s * 1000 }),
    }).finally(() => reporter.close());
    if (args.json) out(JSON.stringify(outcome.manifest, null, 2));
    else out(renderSummary(outcome.state, io().cwd));
    io().exitCode = outcome.state.status === 'succeeded' ? 0 : outcome.state.status === 'cancelled' ? 130 : 1;
  },
});
