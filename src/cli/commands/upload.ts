import { defineCommand } from 'citty';
import { uploadStageFor } from '../../build/job.ts';
import { uploadBuild } from '../../build/upload-build.ts';
import { Reporter } from '../../ui/reporter.ts';
import { renderSummary } from '../../ui/summary.ts';
import { inventoryArg, loadFromArgs } from '../inventory-arg.ts';
import { io, out } from '../io.ts';
import { exitCodeFor, listArg, targetArgs } from './build.ts';

export default defineCommand({
  meta: { name: 'upload', description: "Upload a fetched build's images to the targets (pending ones only)" },
  args: {
    ...inventoryArg,
    build: { type: 'positional', description: 'Build id, e.g. 20261121t101500z', required: true },
    ...targetArgs,
    json: { type: 'boolean', description: 'Print the manifest as JSON on stdout' },
  },
  async run({ args }) {
    const { stderr, signal, env, cwd } = io();
    const loaded = await loadFromArgs(args);
    const reporter = new Reporter({ stream: stderr });
    const stage = uploadStageFor(loaded, { env, targets: { only: listArg(args.only), skip: listArg(args.skip) } });
    const outcome = await uploadBuild(loaded, args.build, stage, signal, reporter).finally(() => reporter.close());
    if (args.json) out(JSON.stringify(outcome.manifest, null, 2));
    else out(renderSummary(outcome.state, cwd));
    io().exitCode = exitCodeFor(outcome.state);
  },
});
