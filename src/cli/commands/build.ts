import { resolve } from 'node:path';
import { defineCommand } from 'citty';
import { runBuildJob } from '../../build/job.ts';
import { Reporter } from '../../ui/reporter.ts';
import { renderSummary } from '../../ui/summary.ts';
import type { BuildState } from '../../records/state.ts';
import { inventoryArg } from '../inventory-arg.ts';
import { io, out } from '../io.ts';

export function listArg(value: string | undefined): string[] | undefined {
  const items = value?.split(',').map((s) => s.trim()).filter(Boolean);
  return items?.length ? items : undefined;
}

export const targetArgs = {
  only: { type: 'string' as const, description: 'Upload only to these targets (names or kinds, comma-separated)', valueHint: 'LIST' },
  skip: { type: 'string' as const, description: 'Do not upload to these targets (names or kinds)', valueHint: 'LIST' },
};

export function exitCodeFor(state: BuildState): number {
  return state.status === 'succeeded' ? 0 : state.status === 'cancelled' ? 130 : 1;
}

export default defineCommand({
  meta: { name: 'build', description: 'Build the Containerfile into disk images on native workers, fetch, verify and upload them' },
  args: {
    ...inventoryArg,
    arch: { type: 'string', default: 'all', description: 'Arches to build: all, or a list such as x86_64,s390x', valueHint: 'LIST' },
    ...targetArgs,
    upload: { type: 'boolean', default: true, description: 'Upload to the targets', negativeDescription: 'Build and fetch only' },
    json: { type: 'boolean', description: 'Print the manifest (builds[], artifact ids) as JSON on stdout' },
    quiet: { type: 'boolean', alias: 'q', description: 'Keep builder output out of the terminal (it still goes to the log files)' },
  },
  async run({ args }) {
    const { stderr, signal, env, cwd } = io();
    const reporter = new Reporter({ stream: stderr, verbose: !args.quiet });
    const outcome = await runBuildJob({
      inventoryPath: resolve(cwd, args.inventory),
      arches: args.arch,
      signal,
      reporter,
      env,
      noUpload: !args.upload,
      targets: { only: listArg(args.only), skip: listArg(args.skip) },
      trigger: 'cli',
    }).finally(() => reporter.close());
    if (args.json) out(JSON.stringify(outcome.manifest, null, 2));
    else out(renderSummary(outcome.state, cwd));
    io().exitCode = exitCodeFor(outcome.state);
  },
});
