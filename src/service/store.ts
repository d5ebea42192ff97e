// The service's own records (builds_dir/.service/service.json): what triggered each run, the run
// waiting its turn, and the schedule's and the watcher's memory, written atomically on every
// change so a restart resumes where the last process stopped. The builds themselves stay in
// builds/<id>/ (state.json, manifest.json); this file only links runs to them.

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Arch } from '../core/arch.ts';
import { FarmError } from '../core/errors.ts';
import type { BuildStatus } from '../records/state.ts';
import { JsonRecord } from '../core/atomic.ts';

export type TriggerKind = 'source' | 'registry' | 'schedule' | 'inactivity' | 'api' | 'github' | 'gitlab';

export interface Reason {
  kind: TriggerKind;
  detail: string;
  at: string;
  /** Build even when the key equals the last successful build's. */
  force: boolean;
  /** The commit a push or the git watcher named, so a second trigger for it builds nothing. */
  commit?: string;
  /** Arches asked for (absent: the service's arches). */
  arches?: Arch[];
}

/** queued/running while in flight; then the build's status, 'skipped' (key unchanged) or 'error'. */
export type RunStatus = 'queued' | 'running' | BuildStatus | 'skipped' | 'error' | 'interrupted';

export interface RunRecord {
  id: string;
  reasons: Reason[];
  queuedAt: string;
  startedAt?: string;
  finishedAt?: string;
  status: RunStatus;
  buildId?: string;
  /** Why it was skipped or failed before building. */
  message?: string;
  key?: string;
  /** The git commit built, for a git source. */
  commit?: string;
}

export type ChoreKind = 'prune' | 'sweep';

/** What a scheduled chore did, for the log and the page. */
export interface ChoreReport {
  at: string;
  ok: boolean;
  /** One line: what was planned or done, or why it failed. */
  summary: string;
}

export interface ServiceState {
  version: 1;
  /** Finished runs, newest first. */
  runs: RunRecord[];
  running?: RunRecord;
  pending?: RunRecord;
  source: {
    /** The last key the watcher saw (files only), to notice changes between polls. */
    seenKey?: string;
    /** The commit the git work dir was last synced to. */
    gitHead?: string;
    /** An image source: the digest its tag named at the last poll. */
    seenDigest?: string;
  };
  schedule: { lastFiredAt?: string };
  inactivity: { lastFiredAt?: string };
  /** The scheduled chores (prune, sweep): when each last fired and what it did. */
  chores?: Partial<Record<ChoreKind, { lastFiredAt?: string; last?: ChoreReport }>>;
  /** Webhook deliveries received ("github:<X-GitHub-Delivery>"), newest first, so a replay builds nothing. */
  deliveries?: Array<{ id: string; at: string }>;
}

const KEEP_RUNS = 200;

export const SERVICE_STATE_FILE = 'service.json';

export class ServiceStore extends JsonRecord<ServiceState> {
  private constructor(path: string, state: ServiceState) {
    super(path, state);
  }

  static async open(stateDir: string): Promise<ServiceStore> {
    await mkdir(stateDir, { recursive: true });
    const path = join(stateDir, SERVICE_STATE_FILE);
    let state: ServiceState = { version: 1, runs: [], source: {}, schedule: {}, inactivity: {} };
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new FarmError('STATE', `cannot read the service state ${path}: ${(err as Error).message}`, { hint: 'make it readable by the user running farm serve' });
      }
    }
    if (text !== undefined) {
      try {
        state = JSON.parse(text) as ServiceState;
      } catch {
        throw new FarmError('STATE', `the service state ${path} is not valid JSON`, { hint: 'it was edited or damaged; move it away to start with empty history (builds/ keeps the builds)' });
      }
      if (state.version !== 1) throw new FarmError('STATE', `the service state ${path} has unknown version ${String(state.version)}`);
    }
    return new ServiceStore(path, state);
  }

  /** Only the newest runs are kept. */
  protected override normalize(state: ServiceState): void {
    state.runs = state.runs.slice(0, KEEP_RUNS);
  }
}
