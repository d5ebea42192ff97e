// The JSON the API returns and the status page renders: runs (triggers, queue state) and builds
// (per arch and per target status, durations, log links, new images), from the service state and
// the build records.

import type { ArchState } from '../records/state.ts';
import type { BuildSummary } from '../records/history.ts';
import { statusText } from './queue.ts';
import { imageJson } from './notify.ts';
import type { Reason, RunRecord } from './store.ts';

export interface RunView {
  id: string;
  status: RunRecord['status'];
  /** "queued (coalesced 3 triggers)", "running", "succeeded", "skipped"... */
  status_text: string;
  coalesced: number;
  reasons: Reason[];
  queued_at: string;
  started_at?: string;
  finished_at?: string;
  build_id?: string;
  message?: string;
  commit?: string;
}

export interface ArchView {
  arch: string;
  step: ArchState['step'];
  worker?: string;
  image_name: string;
  error?: string;
  build_s?: number;
  fetch_s?: number;
  log: string;
  uploads: Array<{ target: string; kind: string; type: string; step: string; error?: string }>;
  /** The smoke check's verdict per booted disk, and its console log when there is one. */
  smoke?: Array<{ types: string[]; status: string; reason?: string; seconds?: number; accel?: string }>;
  smoke_log?: string;
}

export interface BuildView {
  build_id: string;
  status: BuildSummary['status'];
  trigger?: string;
  run_id?: string;
  reasons?: Reason[];
  commit?: string;
  started_at: string;
  finished_at?: string;
  duration_s?: number;
  key?: string;
  arches: ArchView[];
  images: Array<{ arch: string; type: string; target: string; kind: string; location: string; name: string; id: string; artifact_id: string; existing: boolean }>;
  artifacts: BuildSummary['artifacts'];
  manifest: string;
}

export function runView(run: Readonly<RunRecord>): RunView {
  return {
    id: run.id,
    status: run.status,
    status_text: statusText(run),
    coalesced: run.reasons.length,
    reasons: run.reasons,
    queued_at: run.queuedAt,
    ...(run.startedAt ? { started_at: run.startedAt } : {}),
    ...(run.finishedAt ? { finished_at: run.finishedAt } : {}),
    ...(run.buildId ? { build_id: run.buildId } : {}),
    ...(run.message ? { message: run.message } : {}),
    ...(run.commit ? { commit: run.commit } : {}),
  };
}

const round = (n: number | undefined) => (n === undefined ? undefined : Math.round(n * 10) / 10);

export function buildView(b: BuildSummary, run: Readonly<RunRecord> | undefined): BuildView {
  const arches = (Object.values(b.arches) as Array<ArchState | undefined>)
    .filter((a): a is ArchState => a !== undefined)
    .map((a): ArchView => {
      const build = round(a.durations?.build);
      const fetch = round(a.durations?.fetch);
      return {
        arch: a.arch,
        step: a.step,
        ...(a.worker ? { worker: a.worker } : {}),
        image_name: a.imageName,
        ...(a.error ? { error: a.error } : {}),
        ...(build !== undefined ? { build_s: build } : {}),
        ...(fetch !== undefined ? { fetch_s: fetch } : {}),
        log: `/builds/${b.buildId}/${a.arch}/build.log`,
        ...(a.smoke
          ? {
              smoke: a.smoke.map((r) => ({ types: r.types, status: r.status, ...(r.reason ? { reason: r.reason } : {}), ...(r.seconds !== undefined ? { seconds: r.seconds } : {}), ...(r.accel ? { accel: r.accel } : {}) })),
              ...(a.smoke.some((r) => r.log) ? { smoke_log: `/builds/${b.buildId}/${a.arch}/smoke.log` } : {}),
            }
          : {}),
        uploads: Object.values(a.uploads).map((u) => ({ target: u.target, kind: u.kind, type: u.type, step: u.step, ...(u.error ? { error: u.error } : {}) })),
      };
    });
  const end = b.finishedAt ? Date.parse(b.finishedAt) : undefined;
  return {
    build_id: b.buildId,
    status: b.status,
    ...(b.trigger ? { trigger: b.trigger } : {}),
    ...(run ? { run_id: run.id, reasons: run.reasons } : {}),
    ...(run?.commit ? { commit: run.commit } : {}),
    started_at: b.startedAt,
    ...(b.finishedAt ? { finished_at: b.finishedAt } : {}),
    ...(end !== undefined ? { duration_s: Math.round((end - Date.parse(b.startedAt)) / 100) / 10 } : {}),
    ...(b.key ? { key: b.key } : {}),
    arches,
    images: b.images.map((i) => ({ ...imageJson(i), existing: i.existing })),
    artifacts: b.artifacts,
    manifest: `/builds/${b.buildId}/manifest.json`,
  };
}
