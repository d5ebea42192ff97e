// Polls the source and submits a 'source' trigger when it changed: for a git source, when the
// branch head moves (git ls-remote, cheap); for a local path, when the key over its files moves.
// The run itself then decides with the full key (decideBuild), so a change that does not change
// the images builds nothing.

import { FarmError, errorMessage } from '../core/errors.ts';
import { retry, type RetrySettings } from '../core/retry.ts';
import { headDigest, type ImageSourceSpec } from '../registry/resolve.ts';
import { loadInventory } from '../inventory/load.ts';
import { computeBuildKey } from '../triggers/key.ts';
import { selectArches } from '../pipeline/job.ts';
import type { Clock, Timer } from './clock.ts';
import type { GitSource } from './git.ts';
import type { Reason, ServiceStore } from './store.ts';

/** Returns the reason to build, or undefined when nothing changed. */
export type SourceCheck = (signal: AbortSignal) => Promise<(Omit<Reason, 'at' | 'force' | 'kind'> & { kind?: Reason['kind'] }) | undefined>;

export class SourceWatcher {
  private timer: Timer | undefined;
  private readonly controller = new AbortController();
  private lastError = '';
  private checking: Promise<void> | undefined;

  constructor(
    private readonly opts: {
      clock: Clock;
      intervalMs: number;
      check: SourceCheck;
      submit: (reason: Reason) => void;
      log: (line: string) => void;
    },
  ) {}

  start(): void {
    this.arm(0);
  }

  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    this.controller.abort();
    await this.checking;
  }

  private arm(ms: number): void {
    if (this.controller.signal.aborted) return;
    this.timer = this.opts.clock.after(ms, () => {
      this.checking = this.poll().finally(() => {
        this.checking = undefined;
        this.arm(this.opts.intervalMs);
      });
    });
  }

  private async poll(): Promise<void> {
    try {
      const found = await this.opts.check(this.controller.signal);
      if (this.lastError) this.opts.log('source check works again');
      this.lastError = '';
      if (found && !this.controller.signal.aborted) {
        this.opts.submit({ kind: found.kind ?? 'source', detail: found.detail, ...(found.commit ? { commit: found.commit } : {}), at: new Date(this.opts.clock.now()).toISOString(), force: false });
      }
    } catch (err) {
      if (this.controller.signal.aborted) return;
      const msg = errorMessage(err);
      // Once per distinct problem: a source down for a day is one line, not 1440.
      if (msg !== this.lastError) this.opts.log(`source check failed (retrying every ${Math.round(this.opts.intervalMs / 1000)} s): ${msg}`);
      this.lastError = msg;
    }
  }
}

/** A git branch: a new head, not yet synced and not yet submitted, is a change. */
export function gitCheck(git: GitSource, store: ServiceStore): SourceCheck {
  let submitted: string | undefined;
  return async (signal) => {
    const head = await git.remoteHead(signal);
    if (head === store.current.source.gitHead || head === submitted) return undefined;
    submitted = head;
    const before = store.current.source.gitHead;
    return {
      detail: before ? `${git.source.branch} moved to ${head.slice(0, 12)} (from ${before.slice(0, 12)})` : `${git.source.branch} at ${head.slice(0, 12)} (first check)`,
      commit: head,
    };
  };
}

/**
 * The inventory's own source: the key over the files (no worker asked, so polling stays cheap)
 * against the one seen at the last check.
 */
export function pathCheck(inventoryPath: string, store: ServiceStore, arches: string): SourceCheck {
  return async (signal) => {
    const loaded = await loadInventory(inventoryPath);
    const key = await computeBuildKey(loaded, { signal, inspect: async () => undefined, arches: selectArches(arches, loaded) });
    const seen = store.current.source.seenKey;
    if (key.key === seen) return undefined;
    await store.update((s) => {
      s.source.seenKey = key.key;
    });
    return { detail: seen ? 'source files changed' : 'first check of the source' };
  };
}

/**
 * An image source: HEAD on its tag (registries count GETs against rate limits, not HEADs), with a
 * couple of quick retries for a passing error; a digest other than the one seen at the last poll
 * is a change. The run then reads the list once (GET) and decides with the full key.
 */
export function registryCheck(spec: ImageSourceSpec, store: ServiceStore, env: NodeJS.ProcessEnv, retries: RetrySettings = { retries: 2, minTimeoutMs: 500, maxTimeoutMs: 4000 }): SourceCheck {
  return async (signal) => {
    const digest = await retry(() => headDigest(spec, env, signal), {
      ...retries,
      what: `HEAD ${spec.image}`,
      signal,
      // The registry's refusal (401, 404) is an answer, not a passing error.
      retryable: (e) => !(e instanceof FarmError && /answered (401|403|404)/.test(e.message)),
    });
    const seen = store.current.source.seenDigest;
    if (digest === seen) return undefined;
    await store.update((s) => {
      s.source.seenDigest = digest;
    });
    return { kind: 'registry', detail: seen ? `${spec.image} moved to ${digest.slice(0, 19)} (from ${seen.slice(0, 19)})` : `${spec.image} at ${digest.slice(0, 19)} (first check)` };
  };
}
