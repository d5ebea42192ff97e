import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { defineCommand } from 'citty';
import { runBuildJob, selectArches } from '../../build/job.ts';
import type { Arch } from '../../arch.ts';
import { FarmError, errorMessage, isAbortError } from '../../errors.ts';
import { loadInventory } from '../../inventory/load.ts';
import type { LoadedInventory } from '../../inventory/schema.ts';
import { Reporter, type ScopedReporter } from '../../ui/reporter.ts';
import { renderSummary } from '../../ui/summary.ts';
import type { BuildState } from '../../records/state.ts';
import { decideBuild } from '../../triggers/decide.ts';
import { computeBuildKey, type BuildKey } from '../../triggers/key.ts';
import { inventoryArg } from '../inventory-arg.ts';
import { queueOnServer } from './serve.ts';
import { err, io, out } from '../io.ts';

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

export default defineCommand({
  meta: { name: 'build', description: 'Build the Containerfile into disk images on native workers, fetch, verify and upload them' },
  args: {
    ...inventoryArg,
    arch: { type: 'string', default: 'all', description: 'Arches to build: all, or a list such as x86_64,s390x', valueHint: 'LIST' },
    ...targetArgs,
    upload: { type: 'boolean', default: true, description: 'Upload to the targets', negativeDescription: 'Build and fetch only' },
    json: { type: 'boolean', description: 'Print the manifest (builds[], artifact ids) as JSON on stdout' },
    quiet: { type: 'boolean', alias: 'q', description: 'Keep builder output out of the terminal (it still goes to the log files)' },
    'if-changed': {
      type: 'boolean',
      description: 'Build only if the build key (sources, builder, base image digests, image types) differs from the last successful build',
    },
    force: { type: 'boolean', description: 'With --if-changed: build even when nothing changed' },
    server: { type: 'string', description: 'Queue the build on a running `farm serve` at this URL instead (token from FARM_TOKEN)', valueHint: 'URL' },
  },
  async run({ args }) {
    if (args.server) return queueOnServer(args.server, { arch: args.arch, ifChanged: Boolean(args['if-changed']), force: Boolean(args.force), json: Boolean(args.json) });
    const { stderr, signal, env, cwd } = io();
    const inventoryPath = resolve(cwd, args.inventory);
    const loaded = await loadInventory(inventoryPath);
    const arches = selectArches(args.arch, loaded);
    const reporter = new Reporter({ stream: stderr, verbose: !args.quiet });
    let decision: Awaited<ReturnType<typeof keyFor>>;
    try {
      decision = await keyFor(loaded, arches, { ifChanged: Boolean(args['if-changed']), force: Boolean(args.force) }, signal, reporter.scoped('farm'));
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
  },
});
