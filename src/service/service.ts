// `farm serve`: one inventory, built on its triggers (source changes, a cron schedule, the
// inactivity rule, the API and push webhooks) one build at a time, with a status page, JSON API,
// metrics and notifications. Everything it remembers is on disk (builds/ and builds/.service/).

import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.ts';
import { redact, registerEnvSecrets, registerSecret } from '../core/redact.ts';
import { loadInventory } from '../inventory/load.ts';
import { lastSuccessful, listBuilds, type BuildSummary } from '../records/history.ts';
import type { KeyOptions } from '../triggers/key.ts';
import type { JobOptions } from '../pipeline/job.ts';
import type { BuildOutcome } from '../pipeline/run-build.ts';
import { systemClock, type Clock } from './clock.ts';
import { serviceSettings, type ServiceSettings } from './config.ts';
import { GitSource } from './git.ts';
import { HostCheck } from './hosts.ts';
import { ServiceLifecycle } from './lifecycle.ts';
import { Chores, type ChoreDeps, type ChoreView } from './chores.ts';
import type { UploaderFactory } from '../pipeline/upload-stage.ts';
import { createServiceServer } from './http.ts';
import { ServiceMetrics } from './metrics.ts';
import { notifyEnv, notifyPayload, postWebhook, runNotifyCommand } from './notify.ts';
import { printable } from './printable.ts';
import { PushGate } from './pushes.ts';
import { BuildQueue, type SubmitResult } from './queue.ts';
import { QuietLog } from './quiet-log.ts';
import { makeExecute } from './runner.ts';
import { CronTrigger, InactivityTrigger } from './schedule.ts';
import { ServiceStore, type Reason, type RunRecord } from './store.ts';
import { buildView, runView, type BuildView, type RunView } from './views.ts';
import { SourceWatcher, gitCheck, pathCheck, registryCheck } from './watch.ts';

export interface ServiceOptions {
  inventoryPath: string;
  /** Overrides service.listen (host:port; port 0 picks a free one). */
  listen?: string;
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
  /** Where the service logs (default process.stderr). */
  stream?: NodeJS.WritableStream;
  /** Stand-ins for tests. */
  runJob?: (opts: JobOptions) => Promise<BuildOutcome>;
  inspect?: KeyOptions['inspect'];
  /** Notify webhook retry pacing (tests shorten it). */
  notifyRetryMs?: number;
  /** The targets' clients for the lifecycle (release, the images' channels); tests stand in. */
  uploaderFactory?: UploaderFactory;
  /** Stand-ins for the scheduled prune and sweep (tests). */
  chores?: Pick<ChoreDeps, 'prune' | 'sweep'>;
}

export interface Snapshot {
  service: {
    inventory: string;
    now: string;
    accepting: boolean;
    source: { kind: 'path' | 'git' | 'image'; url?: string; branch?: string; commit?: string; image?: string; digest?: string; watch: boolean; poll_interval_s: number };
    schedule?: { pattern: string; next?: string };
    inactivity?: { after_s: number; due?: string };
    on_shutdown: 'cancel' | 'finish';
    /** Scheduled prune and sweep: when next, and what the last run did. */
    chores: { prune?: ChoreView; sweep?: ChoreView };
  };
  running: RunView | null;
  pending: RunView | null;
  builds: BuildView[];
  runs: RunView[];
}

const HISTORY = 20;

export class FarmService {
  readonly metrics = new ServiceMetrics();
  readonly queue: BuildQueue;
  /** The Host names answered (DNS rebinding). */
  readonly hosts: HostCheck;
  /** Which pushes start a build (replays and built commits do not). */
  readonly pushes: PushGate;
  /** Channels, the current mark and release, from the targets themselves. */
  readonly lifecycle: ServiceLifecycle;
  readonly chores: Chores;
  private readonly quiet: QuietLog;
  private server: Server | undefined;
  private watcher: SourceWatcher | undefined;
  private cron: CronTrigger | undefined;
  private inactivity: InactivityTrigger | undefined;
  private readonly git: GitSource | undefined;
  private readonly clock: Clock;
  private readonly stream: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
  private baseUrl = '';
  private readonly notifying = new Set<Promise<unknown>>();

  private constructor(
    readonly opts: ServiceOptions,
    readonly settings: ServiceSettings,
    readonly store: ServiceStore,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.stream = opts.stream ?? process.stderr;
    this.env = opts.env ?? process.env;
    // The variables the inventory names for the notify command are its credentials (a chat token).
    registerEnvSecrets(this.env, [settings.tokenEnv, settings.githubSecretEnv, settings.gitlabTokenEnv, settings.notify.webhookEnv, ...settings.notify.env]);
    registerSecret(settings.notify.webhook); // a webhook URL is its own credential
    this.hosts = new HostCheck(settings.listen.host, settings.publicUrl);
    this.quiet = new QuietLog((l) => this.log(l), () => this.clock.now());
    if (settings.source.kind === 'git') {
      this.git = new GitSource({ url: settings.source.url, branch: settings.source.branch }, { root: join(settings.stateDir, 'git'), env: this.env });
    }
    this.queue = new BuildQueue({
      clock: this.clock,
      store,
      debounceMs: settings.debounceMs,
      log: (l) => this.log(l),
      execute: makeExecute({
        inventoryPath: opts.inventoryPath,
        settings,
        store,
        ...(this.git ? { git: this.git } : {}),
        env: this.env,
        stream: this.stream,
        log: (l) => this.log(l),
        ...(opts.runJob ? { runJob: opts.runJob } : {}),
        ...(opts.inspect ? { inspect: opts.inspect } : {}),
      }),
      onFinished: (run) => this.finished(run),
    });
    this.lifecycle = new ServiceLifecycle({
      inventoryPath: opts.inventoryPath,
      env: this.env,
      clock: this.clock,
      log: (l) => this.log(l),
      ...(opts.uploaderFactory ? { factory: opts.uploaderFactory } : {}),
    });
    this.chores = new Chores({
      inventoryPath: opts.inventoryPath,
      settings,
      store,
      clock: this.clock,
      env: this.env,
      log: (l) => this.log(l),
      ...(opts.uploaderFactory ? { factory: opts.uploaderFactory } : {}),
      ...opts.chores,
    });
    this.pushes = new PushGate({
      source: settings.source,
      store,
      inFlight: () => [this.queue.running, this.queue.pending],
      now: () => this.clock.now(),
      log: (l) => this.log(l),
    });
  }

  static async create(opts: ServiceOptions): Promise<FarmService> {
    const loaded = await loadInventory(opts.inventoryPath);
    const settings = serviceSettings(loaded, opts.listen ? { listen: opts.listen } : {});
    const store = await ServiceStore.open(settings.stateDir);
    return new FarmService(opts, settings, store);
  }

  /** One line of the service log; control characters in it (from request data) are escaped. */
  log(line: string): void {
    this.stream.write(`[serve] ${printable(redact(line))}\n`);
  }

  /** A line a stranger can cause (a refused request): a few a minute of each kind. */
  quietLog(kind: string, line: string): void {
    this.quiet.line(kind, line);
  }

  get url(): string {
    return this.baseUrl;
  }

  /** Listens, then starts the triggers; resolves with the address once requests are served. */
  async start(): Promise<string> {
    const s = this.settings;
    const interrupted = this.store.current.running;
    if (interrupted) {
      // The last process ended mid-run (killed, crashed): its build recorded what it could.
      this.log(`run ${interrupted.id} was interrupted when the service last stopped`);
      await this.store.update((st) => {
        st.runs.unshift({ ...interrupted, status: 'interrupted', finishedAt: new Date(this.clock.now()).toISOString() });
        delete st.running;
      });
    }
    this.metrics.seed(await lastSuccessful(s.buildsDir).catch(() => undefined));

    this.server = createServiceServer(this);
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(s.listen.port, s.listen.host, () => resolve());
    });
    const addr = this.server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    this.baseUrl = `http://${host}:${addr.port}`;
    this.log(`listening on ${this.baseUrl} (inventory ${this.opts.inventoryPath})`);

    this.queue.restore(this.store.current.pending);
    if (s.watch) {
      const src = s.source;
      const check = this.git
        ? gitCheck(this.git, this.store)
        : src.kind === 'image'
          ? registryCheck({ image: src.image, tls_verify: src.tlsVerify }, this.store, this.env)
          : pathCheck(this.opts.inventoryPath, this.store, s.arches?.join(',') ?? 'all');
      this.watcher = new SourceWatcher({ clock: this.clock, intervalMs: s.pollMs, check, submit: (r) => this.submit(r), log: (l) => this.log(l) });
      this.watcher.start();
      this.log(`watching ${this.git ? `${this.git.source.url} branch ${this.git.source.branch}` : src.kind === 'image' ? `the tag of ${src.image}` : 'the inventory source'} every ${s.pollMs / 1000} s`);
    }
    if (s.schedule) {
      this.cron = new CronTrigger({ clock: this.clock, pattern: s.schedule, store: this.store, fire: (d) => this.submit(this.reason('schedule', d, true)), log: (l) => this.log(l) });
      await this.cron.start();
      this.log(`schedule "${s.schedule}": next at ${this.cron.next ? new Date(this.cron.next).toISOString() : 'never'}`);
    }
    await this.chores.start();
    if (s.inactivityMs !== undefined) {
      this.inactivity = new InactivityTrigger({
        clock: this.clock,
        afterMs: s.inactivityMs,
        store: this.store,
        lastSuccessAt: async () => {
          const last = await lastSuccessful(s.buildsDir);
          return last ? Date.parse(last.finishedAt ?? last.startedAt) : undefined;
        },
        busy: () => Boolean(this.queue.running || this.queue.pending),
        fire: (d) => this.submit(this.reason('inactivity', d, true)),
        log: (l) => this.log(l),
      });
      await this.inactivity.start();
    }
    return this.baseUrl;
  }

  /**
   * Stops the triggers and the listener; 'cancel' aborts the running build (it records itself as
   * cancelled), 'finish' waits for it. A queued run stays queued in the state for the next start.
   */
  async stop(mode: 'cancel' | 'finish' = this.settings.onShutdown): Promise<void> {
    this.log(mode === 'cancel' ? 'stopping: cancelling the running build' : 'stopping: letting the running build finish');
    this.cron?.stop();
    this.inactivity?.stop();
    await this.watcher?.stop();
    await this.chores.stop();
    // Requests still being answered get to finish; new connections are refused.
    const closed = this.server ? new Promise<void>((r) => this.server!.close(() => r())) : Promise.resolve();
    this.server?.closeIdleConnections();
    await this.queue.stop(mode);
    await Promise.allSettled([...this.notifying]);
    this.server?.closeAllConnections();
    await closed;
    this.log('stopped');
  }

  reason(kind: Reason['kind'], detail: string, force: boolean, arches?: Reason['arches']): Reason {
    return { kind, detail, at: new Date(this.clock.now()).toISOString(), force, ...(arches ? { arches } : {}) };
  }

  /** Queues a run (or joins the waiting one); undefined once the service is stopping. */
  submit(reason: Reason): SubmitResult | undefined {
    if (!this.queue.accepting) {
      this.metrics.trigger(reason.kind, 'refused');
      return undefined;
    }
    const result = this.queue.submit(reason);
    this.metrics.trigger(reason.kind, result.outcome);
    this.updateQueueGauges();
    return result;
  }

  private updateQueueGauges(): void {
    this.metrics.queueLength.set(this.queue.pending ? 1 : 0);
    this.metrics.queuedTriggers.set(this.queue.pending?.reasons.length ?? 0);
    this.metrics.running.set(this.queue.running ? 1 : 0);
  }

  async snapshot(): Promise<Snapshot> {
    const s = this.settings;
    const builds = await listBuilds(s.buildsDir, { limit: HISTORY });
    const runsByBuild = new Map<string, RunRecord>();
    for (const r of [...this.store.current.runs].reverse()) if (r.buildId) runsByBuild.set(r.buildId, r);
    const running = this.queue.running;
    if (running?.buildId) runsByBuild.set(running.buildId, running);
    this.updateQueueGauges();
    return {
      service: {
        inventory: this.opts.inventoryPath,
        now: new Date(this.clock.now()).toISOString(),
        accepting: this.queue.accepting,
        source:
          s.source.kind === 'git'
            ? { kind: 'git', url: s.source.url, branch: s.source.branch, ...(this.store.current.source.gitHead ? { commit: this.store.current.source.gitHead } : {}), watch: s.watch, poll_interval_s: s.pollMs / 1000 }
            : s.source.kind === 'image'
              ? { kind: 'image', image: s.source.image, ...(this.store.current.source.seenDigest ? { digest: this.store.current.source.seenDigest } : {}), watch: s.watch, poll_interval_s: s.pollMs / 1000 }
              : { kind: 'path', watch: s.watch, poll_interval_s: s.pollMs / 1000 },
        ...(s.schedule ? { schedule: { pattern: s.schedule, ...(this.cron?.next ? { next: new Date(this.cron.next).toISOString() } : {}) } } : {}),
        ...(s.inactivityMs !== undefined
          ? { inactivity: { after_s: s.inactivityMs / 1000, ...(this.inactivity?.due !== undefined ? { due: new Date(this.inactivity.due).toISOString() } : {}) } }
          : {}),
        on_shutdown: s.onShutdown,
        chores: this.chores.view(),
      },
      running: running ? runView(running) : null,
      pending: this.queue.pending ? runView(this.queue.pending) : null,
      builds: builds.map((b) => buildView(b, runsByBuild.get(b.buildId))),
      runs: this.store.current.runs.slice(0, HISTORY).map(runView),
    };
  }

  /** A run (by run id) or a build (by build id), for GET /api/builds/<id>. */
  async lookup(id: string): Promise<RunView | BuildView | undefined> {
    const runs = [this.queue.running, this.queue.pending, ...this.store.current.runs].filter((r): r is RunRecord => r !== undefined);
    const run = runs.find((r) => r.id === id);
    if (run) return runView(run);
    const build = (await listBuilds(this.settings.buildsDir)).find((b) => b.buildId === id);
    return build ? buildView(build, runs.find((r) => r.buildId === id)) : undefined;
  }

  private async finished(run: RunRecord): Promise<void> {
    let build: BuildSummary | undefined;
    if (run.buildId) build = (await listBuilds(this.settings.buildsDir).catch(() => [])).find((b) => b.buildId === run.buildId);
    this.metrics.finished(run, build);
    this.lifecycle.forget();
    this.updateQueueGauges();
    void this.inactivity?.recheck();
    if (run.status === 'skipped') return;
    const sending = this.notify(run, build);
    this.notifying.add(sending);
    await sending.finally(() => this.notifying.delete(sending));
  }

  private async notify(run: RunRecord, build: BuildSummary | undefined): Promise<void> {
    const n = this.settings.notify;
    const webhook = n.webhook ?? (n.webhookEnv ? this.env[n.webhookEnv] : undefined);
    if (!webhook && !n.command) return;
    const base = this.settings.publicUrl ?? this.baseUrl;
    const payload = notifyPayload(run, build, base ? `${base}/api/builds/${run.buildId ?? run.id}` : undefined);
    const jobs: Promise<unknown>[] = [];
    if (webhook) {
      jobs.push(
        postWebhook(webhook, payload, { log: (l) => this.log(l), ...(this.opts.notifyRetryMs !== undefined ? { minTimeoutMs: this.opts.notifyRetryMs } : {}) }).then(
          (status) => this.log(`notified ${new URL(webhook).origin} (${status}) of run ${run.id}`),
          (err: unknown) => this.log(`notify webhook failed for run ${run.id}: ${errorMessage(err)}`),
        ),
      );
    } else if (n.webhookEnv) {
      this.log(`notify: ${n.webhookEnv} is not set; no webhook sent`);
    }
    if (n.command) {
      jobs.push(runNotifyCommand(n.command, payload, { env: notifyEnv(this.env, n.env), log: (l) => this.log(l) }).catch((err: unknown) => this.log(errorMessage(err))));
    }
    await Promise.all(jobs);
  }
}
