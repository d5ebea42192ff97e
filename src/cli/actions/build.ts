// `farm build`: the build job here, or (--server) queued on a running `farm serve`.

import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { CommandContext } from 'citty';
import { runBuildJob, selectArches } from '../../pipeline/job.ts';
import type { Arch } from '../../core/arch.ts';
import { FarmError, errorMessage, isAbortError } from '../../core/errors.ts';
import { loadInventory } from '../../inventory/load.ts';
import type { LoadedInventory } from '../../inventory/schema.ts';
import { Reporter, type ScopedReporter } from '../../ui/reporter.ts';
import { renderSummary } from '../../ui/summary.ts';
import { wantColor } from '../../ui/color.js';
import type { BuildState } from '../../records/state.ts';
import { decideBuild } from '../../triggers/decide.ts';
import { computeBuildKey, type BuildKey } from '../../triggers/key.ts';
import type { RunData } from '../argv.ts';
import type { buildArgs } from '../commands/build.ts';
import { err, io, out } from '../io.ts';
import { listArg } from './args.ts';
import { queueOnServer } from './queue.ts';

export function exitCodeFor(state: BuildState): number {
  return state.status === 'succeeded' ? 0 : state.status === 'cancelled' ? 130 : 1;
}

/** What `--server` sends: the service builds with its own inventory, targets and output. */
const FORWARDED = new Set(['server', 'arch', 'if-changed', 'force', 'json']);

function reportKey(key: BuildKey, log: ScopedReporter): void {
  log.info(`build key ${key.key}${key.notes.length ? ` (${key.notes.join('; ')})` : ''}`);
  if (key.unresolved.length) {
    log.warn(`build key: digest unresolved for ${key.unresolved.join(', ')}; the key follows the files for them`);
  }
}

/**
 * The key for this build, or the reason not to build. A key that cannot be computed never stops
 * a build: it is built without one (and a later --if-changed builds again).
 */
async function keyFor(
  loaded: LoadedInventory,
  arches: Arch[],
  args: { ifChanged: boolean; force: boolean },
  signal: AbortSignal,
  log: ScopedReporter,
): Promise<{ skip?: { buildId: string; dir: string; key: string }; key?: BuildKey }> {
  try {
    if (!args.ifChanged) {
      const key = await computeBuildKey(loaded, { signal, arches });
      reportKey(key, log);
      return { key };
    }
    const d = await decideBuild(loaded, { signal, arches, force: args.force });
    reportKey(d.key, log);
    if (!d.build && d.last) return { skip: { buildId: d.last.buildId, dir: d.last.dir, key: d.key.key } };
    log.info(`building: ${d.reason}`);
    return { key: d.key };
  } catch (e) {
    if (signal.aborted || isAbortError(e)) throw new FarmError('ABORTED', 'cancelled');
    log.warn(`cannot compute the build key (${errorMessage(e)}${e instanceof FarmError && e.hint ? `; ${e.hint}` : ''}); building without one`);
    return {};
  }
}

export async function build({ args, data }: CommandContext<typeof buildArgs>): Promise<void> {
  const ifChanged = Boolean(args['if-changed']);
  if (args.server) {
    const dropped = [...(data as RunData).given].filter((name) => !FORWARDED.has(name));
    if (dropped.length) {
      const names = dropped.map((n) => (n === 'upload' ? '--no-upload' : `--${n}`)).join(', ');
      throw new FarmError('USAGE', `farm build --server cannot pass on ${names}: the service builds with its own inventory, targets and log`, {
        hint: `drop ${names}, or run farm build here without --server`,
      });
    }
    return queueOnServer(args.server, { arch: args.arch, ifChanged, force: Boolean(args.force), json: Boolean(args.json) });
  }
  const { stderr, signal, env, cwd } = io();
  const inventoryPath = resolve(cwd, args.inventory);
  const loaded = await loadInventory(inventoryPath);
  const arches = selectArches(args.arch, loaded);
  const reporter = new Reporter({ stream: stderr, verbose: !args.quiet, color: wantColor(stderr as { isTTY?: boolean }, env) });
  let decision: Awaited<ReturnType<typeof keyFor>>;
  try {
    decision = await keyFor(loaded, arches, { ifChanged, force: Boolean(args.force) }, signal, reporter.scoped('farm'));
  } catch (e) {
    reporter.close();
    throw e;
  }
  if (decision.skip) {
    reporter.close();
    const { buildId, dir, key } = decision.skip;
    err(`up to date: build ${buildId} has key ${key} (use --force to rebuild)`);
    // The images of that build are the current ones: --json gives its manifest.
    if (args.json) out((await readFile(join(dir, 'manifest.json'), 'utf8').catch(() => '{"builds":[]}')).trim());
    return;
  }
  const outcome = await runBuildJob({
    inventoryPath,
    loaded,
    arches: arches.join(','),
    signal,
    reporter,
    env,
    noUpload: !args.upload,
    targets: { only: listArg(args.only), skip: listArg(args.skip) },
    trigger: 'cli',
    ...(decision.key ? { buildKey: decision.key } : {}),
  }).finally(() => reporter.close());
  if (args.json) out(JSON.stringify(outcome.manifest, null, 2));
  else out(renderSummary(outcome.state, cwd));
  io().exitCode = exitCodeFor(outcome.state);
}
