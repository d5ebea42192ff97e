// Prometheus metrics for /metrics (prom-client, on a registry of its own). Counters start at zero
// with each process, as Prometheus expects; the last success time is read back from the records.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BuildSummary } from '../records/history.ts';
import type { RunRecord } from './store.ts';

export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly builds = new Counter({ name: 'farm_builds_total', help: 'Builds finished, by status and first trigger', labelNames: ['status', 'trigger'], registers: [this.registry] });
  private readonly duration = new Histogram({
    name: 'farm_build_duration_seconds',
    help: 'Build duration from start to end',
    labelNames: ['status'],
    buckets: [30, 60, 300, 600, 1200, 1800, 3600, 7200, 14400],
    registers: [this.registry],
  });
  private readonly lastSuccess = new Gauge({ name: 'farm_last_success_timestamp_seconds', help: 'When the last successful build finished (Unix time)', registers: [this.registry] });
  readonly queueLength = new Gauge({ name: 'farm_queue_length', help: 'Runs waiting to start (0 or 1: triggers coalesce)', registers: [this.registry] });
  readonly queuedTriggers = new Gauge({ name: 'farm_queued_triggers', help: 'Triggers coalesced into the waiting run', registers: [this.registry] });
  readonly running = new Gauge({ name: 'farm_build_running', help: '1 while a build runs', registers: [this.registry] });
  private readonly images = new Counter({ name: 'farm_images_published_total', help: 'Images published by builds of this process, by target', labelNames: ['target', 'kind'], registers: [this.registry] });
  private readonly triggers = new Counter({ name: 'farm_triggers_total', help: 'Triggers seen, by kind and outcome (queued, coalesced, refused, ignored)', labelNames: ['kind', 'outcome'], registers: [this.registry] });
  private readonly skipped = new Counter({ name: 'farm_runs_skipped_total', help: 'Runs that built nothing because the build key was unchanged', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'farm_process_' });
  }

  trigger(kind: string, outcome: 'queued' | 'coalesced' | 'refused' | 'ignored'): void {
    this.triggers.inc({ kind, outcome });
  }

  /** Seeds the last-success gauge from the records at start. */
  seed(last: BuildSummary | undefined): void {
    if (last) this.lastSuccess.set(Date.parse(last.finishedAt ?? last.startedAt) / 1000);
  }

  finished(run: RunRecord, build: BuildSummary | undefined): void {
    if (run.status === 'skipped') {
      this.skipped.inc();
      return;
    }
    const status = build?.status ?? run.status;
    this.builds.inc({ status, trigger: run.reasons[0]?.kind ?? 'unknown' });
    const start = build?.startedAt ?? run.startedAt;
    const end = build?.finishedAt ?? run.finishedAt;
    if (start && end) this.duration.observe({ status }, (Date.parse(end) - Date.parse(start)) / 1000);
    if (status === 'succeeded' && end) this.lastSuccess.set(Date.parse(end) / 1000);
    for (const img of build?.images ?? []) if (!img.existing) this.images.inc({ target: img.target, kind: img.kind });
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
