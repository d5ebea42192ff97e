// `farm upload BUILD_ID`: the pending uploads of a fetched build.

import type { CommandContext } from 'citty';
import { uploadStageFor } from '../../pipeline/job.ts';
import { uploadBuild } from '../../pipeline/upload-build.ts';
import { wantColor } from '../../ui/color.js';
import { Reporter } from '../../ui/reporter.ts';
import { renderSummary } from '../../ui/summary.ts';
import type { uploadArgs } from '../commands/upload.ts';
import { io, out } from '../io.ts';
import { listArg, loadFromArgs } from './args.ts';
import { exitCodeFor } from './build.ts';

export async function upload({ args }: CommandContext<typeof uploadArgs>): Promise<void> {
  const { stderr, signal, env, cwd } = io();
  const loaded = await loadFromArgs(args);
  const reporter = new Reporter({ stream: stderr, color: wantColor(stderr as { isTTY?: boolean }, env) });
  const stage = uploadStageFor(loaded, { env, targets: { only: listArg(args.only), skip: listArg(args.skip) } });
  const outcome = await uploadBuild(loaded, args.build, stage, signal, reporter).finally(() => reporter.close());
  if (args.json) out(JSON.stringify(outcome.manifest, null, 2));
  else out(renderSummary(outcome.state, cwd));
  io().exitCode = exitCodeFor(outcome.state);
}
