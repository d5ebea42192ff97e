// The smoke stage of an arch, between bib and the fetch: each worker boots the disks it wrote
// (workers/smoke/), the verdicts are recorded, and under policy block a failed boot fails the arch
// before anything travels; under warn the images go on, marked.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Arch } from '../core/arch.ts';
import { FarmError } from '../core/errors.ts';
import type { ImageType } from '../core/image-types.ts';
import type { Inventory } from '../inventory/schema.ts';
import type { BuildRecord } from '../records/build-record.ts';
import type { SmokeRecord } from '../records/state.ts';
import type { ScopedReporter } from '../ui/reporter.ts';
import type { RunOutputs } from '../../workers/builder.ts';
import type { WorkerTransport } from '../../workers/transport.ts';
import { smokeDisks } from '../../workers/smoke/smoke.ts';
import { smokeFor } from '../../workers/smoke/settings.ts';

export const SMOKE_LOG = 'smoke.log';

export interface SmokeStage {
  inventory: Inventory;
  arch: Arch;
  types: readonly ImageType[];
  /** Each run's outputs and the worker that wrote them. */
  runs: ReadonlyArray<{ worker: { name: string }; value: RunOutputs }>;
  transports: ReadonlyMap<string, WorkerTransport>;
  /** builds/<id>/<arch> */
  archDir: string;
  store: BuildRecord;
  signal: AbortSignal;
  alog: ScopedReporter;
}

/** Boots, records; throws (the arch fails) when a boot failed under policy block. */
export async function smokeStage(job: SmokeStage): Promise<void> {
  const { arch, alog, store } = job;
  const settings = smokeFor(job.inventory, arch);
  if (!settings) {
    await store.smokeRecorded(arch, [{ types: [...job.types], status: 'skipped', reason: 'smoke check off for this arch (smoke: false or no smoke settings)' }]);
    return;
  }
  await mkdir(job.archDir, { recursive: true });
  const consoleFile = join(job.archDir, SMOKE_LOG);
  const log = `${arch}/${SMOKE_LOG}`;
  const records: SmokeRecord[] = [];
  const byWorker = new Map<string, RunOutputs['disks']>();
  for (const r of job.runs) byWorker.set(r.worker.name, [...(byWorker.get(r.worker.name) ?? []), ...r.value.disks]);
  // One worker after another: the boots share the arch's console log (and usually one worker).
  for (const [name, disks] of byWorker) {
    alog.info(`smoke check on ${name}: booting ${disks.map((d) => d.type).join(', ')} (timeout ${settings.timeout_s} s, policy ${settings.policy})`);
    const verdicts = await smokeDisks(job.transports.get(name)!, { arch, disks, settings, consoleFile, signal: job.signal, onLine: (l) => alog.info(l) });
    for (const v of verdicts) {
      records.push({
        types: v.types as ImageType[],
        status: v.status,
        ...(v.reason ? { reason: v.reason } : {}),
        disk: v.disk,
        ...(v.accel ? { accel: v.accel } : {}),
        ...(v.boot ? { boot: v.boot } : {}),
        seconds: v.seconds,
        policy: settings.policy,
        log,
        ...(v.banner ? { banner: v.banner } : {}),
        ...(v.lastLines ? { lastLines: v.lastLines } : {}),
      });
    }
    const booted = new Set(verdicts.flatMap((v) => v.types));
    for (const d of disks) {
      if (!booted.has(d.type)) records.push({ types: [d.type], status: 'skipped', reason: `${d.name} is not a bootable disk`, policy: settings.policy, log });
    }
  }
  await store.smokeRecorded(arch, records);
  const failed = records.filter((r) => r.status === 'failed');
  for (const r of records.filter((x) => x.status === 'passed')) alog.info(`smoke check passed: ${r.types.join(', ')} in ${r.seconds} s (${r.accel}, ${r.boot === 'direct' ? 'direct kernel boot' : 'own bootloader'})`);
  if (failed.length === 0) return;
  const what = failed.map((r) => `${r.types.join(', ')}: ${r.reason}`).join('; ');
  const lines = failed.flatMap((r) => r.lastLines ?? []);
  const tail = lines.length ? `\n  last console lines:\n    ${lines.join('\n    ')}` : '';
  if (settings.policy === 'warn') {
    alog.warn(`smoke check failed (policy warn: the images go on, marked): ${what}${tail}\n  console: ${consoleFile}`);
    return;
  }
  throw new FarmError('BUILD', `smoke check failed (policy block: not fetched, not uploaded): ${what}${tail}`, {
    hint: `the console is in ${consoleFile}; set smoke: { policy: warn } to publish failing images marked instead`,
  });
}
