// The uploads stage: as soon as an arch's artifacts are fetched, each of the arch's targets gets
// the artifact of the type it takes. Implemented in src/pipeline/upload-stage.ts.

import type { ArchPlan, BuildPlan } from '../plan/plan.ts';
import type { BuildRecord } from '../records/build-record.ts';
import type { ScopedReporter } from '../ui/reporter.ts';

export interface UploadStage {
  /** Checks every selected target of the plan before any build starts. */
  preflight(plan: BuildPlan, signal: AbortSignal): Promise<void>;
  /** Uploads one arch's fetched artifacts to its targets, recording each step. */
  uploadArch(plan: ArchPlan, store: BuildRecord, signal: AbortSignal, log: ScopedReporter): Promise<void>;
}
