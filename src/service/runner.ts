// What one run does: bring a git source to its branch head, load the inventory afresh, decide
// with the build key (unless a trigger forces the build), then run the build job in-process with
// the run's AbortSignal. The build records itself (builds/<id>/); the run returns its outcome.

import { resolve } from 'node:path';
import { runBuildJob, selectArches, type JobOptions } from '../pipeline/job.ts';
import type { BuildOutcome } from '../pipeline/run-build.ts';
import { errorMessage } from '../core/errors.ts';
import { loadInventory } from '../inventory/load.ts';
import { BuildRecord } from '../records/build-record.ts';
import type { LoadedInventory } from '../inventory/schema.ts';
import { decideBuild } from '../triggers/decide.ts';
import type { KeyOptions } from '../triggers/key.ts';
import { Reporter } from '../ui/reporter.ts';
import type { ServiceSettings } from './config.ts';
import type { GitSource } from './git.ts';
import { runArches, runForced, type Execute } from './queue.ts';
import type { Reason, ServiceStore } from './store.ts';

/** The inventory with its source replaced by a git work dir. */
export function withSource(loaded: LoadedInventory, dir: string, containerfile: string, context: string): LoadedInventory {
  const inventory = structuredClone(loaded.inventory);
  inventory.source.containerfile = resolve(dir, containerfile);
  inventory.source.context = resolve(dir, context);
  return { ...loaded, inventory };
}

/** "github+api": the kinds of a run's triggers, recorded as the build's trigger. */
export function triggerLabel(reasons: readonly Reason[]): string {
  return [...new Set(reasons.map((r) => r.kind))].join('+');
}

export interface RunnerDeps {
  inventoryPath: string;
  settings: ServiceSettings;
  store: ServiceStore;
  git?: GitSource;
  env: NodeJS.ProcessEnv;
  /** Where build progress lines go (the service's stderr). */
  stream: NodeJS.WritableStream;
  log: (line: string) => void;
  /** Stand-ins for tests. */
  runJob?: (opts: JobOptions) => Promise<BuildOutcome>;
  inspect?: KeyOptions['inspect'];
}

export function makeExecute(deps: RunnerDeps): Execute {
  const runJob = deps.runJob ?? runBuildJob;
  return async (run, ctx) => {
    let loaded = await loadInventory(deps.inventoryPath);
    let commit: string | undefined;
    if (deps.git && deps.settings.source.kind === 'git') {
      commit = await deps.git.sync(ctx.signal);
      await deps.store.update((s) => {
        s.source.gitHead = commit;
      });
      loaded = withSource(loaded, deps.git.dir, deps.settings.source.containerfile, deps.settings.source.context);
    }
    const asked = runArches(run.reasons) ?? deps.settings.arches;
    const arches = selectArches(asked ? asked.join(',') : 'all', loaded);
    const force = runForced(run.reasons);
    const decision = await decideBuild(loaded, { signal: ctx.signal, arches, force, ...(deps.inspect ? { inspect: deps.inspect } : {}) });
    const withCommit = commit ? { commit } : {};
    if (!decision.build) return { status: 'skipped', message: decision.reason, key: decision.key.key, ...withCommit };
    deps.log(`run ${run.id}: building ${arches.join(', ')}${commit ? ` at ${commit.slice(0, 12)}` : ''} (${decision.reason})`);

    let buildId: string | undefined;
    const reporter = new Reporter({ stream: deps.stream, verbose: false, color: false });
    try {
      const outcome = await runJob({
        inventoryPath: deps.inventoryPath,
        loaded,
        arches: arches.join(','),
        signal: ctx.signal,
        reporter,
        env: deps.env,
        trigger: triggerLabel(run.reasons),
        buildKey: decision.key,
        // The run is linked to its build the moment the build's record exists.
        onBuildId: (id) => {
          buildId = id;
          ctx.setBuildId(id);
        },
      });
      return { status: outcome.state.status, buildId: outcome.buildId, ...(outcome.state.key ? { key: outcome.state.key } : {}), message: decision.reason, ...withCommit };
    } catch (err) {
      // A build that threw before recording its end (e.g. writing its key failed) is closed here,
      // so the history never shows it running forever. A failed preflight has no build id.
      if (buildId) {
        const dir = resolve(deps.settings.buildsDir, buildId);
        await BuildRecord.open(dir)
          .then((r) => r.closeIfRunning(ctx.signal.aborted, errorMessage(err)))
          .catch(() => undefined);
      }
      throw err;
    } finally {
      await reporter.close();
    }
  };
}
