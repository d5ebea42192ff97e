// The shape of builds/<id>/state.json, checked with zod whenever a record is read: a file that is
// damaged (torn, edited, not JSON) or written by a newer farm is refused with an error naming the
// file and what to do, before anything acts on it. The types themselves live in ./state.ts; the
// check at the bottom keeps the two in step.

import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ARCHES } from '../core/arch.ts';
import { FarmError } from '../core/errors.ts';
import { IMAGE_TYPES } from '../core/image-types.ts';
import type { BuildState } from './state.ts';

/** The schema version this farm writes and reads. A file with a higher one is a newer farm's. */
export const STATE_VERSION = 1;

const iso = z.string();
const archSchema = z.enum(ARCHES);
const imageType = z.enum(IMAGE_TYPES);

const artifactFile = z.looseObject({
  path: z.string(),
  name: z.string(),
  size: z.number().nonnegative(),
  sha256: z.string(),
  format: z.string(),
});

const artifactRecord = z.looseObject({
  type: imageType,
  imageName: z.string(),
  disk: artifactFile,
  extra: z.array(artifactFile),
  worker: z.string().optional(),
});

const publishedImage = z.looseObject({
  target: z.string(),
  kind: z.string(),
  location: z.string(),
  imageName: z.string(),
  imageId: z.string(),
  artifactId: z.string(),
  existing: z.boolean(),
});

const halfMadeRecord = z.looseObject({
  kind: z.string(),
  location: z.string(),
  name: z.string(),
  attempt: z.string(),
  id: z.string().optional(),
  detail: z.record(z.string(), z.string()).optional(),
  key: z.string(),
  at: iso,
});

const uploadRecord = z.looseObject({
  target: z.string(),
  kind: z.string(),
  type: imageType,
  step: z.enum(['uploading', 'uploaded', 'failed']),
  images: z.array(publishedImage),
  error: z.string().optional(),
  at: z.record(z.string(), iso),
  halfMade: z.array(halfMadeRecord).optional(),
});

const archStep = z.enum(['planned', 'building', 'built', 'fetching', 'fetched', 'failed']);

const runRecord = z.looseObject({
  types: z.array(imageType),
  worker: z.string().optional(),
  at: z.looseObject({ started: iso.optional(), built: iso.optional() }),
});

const smokeRecord = z.looseObject({
  types: z.array(imageType),
  status: z.enum(['passed', 'failed', 'skipped']),
  reason: z.string().optional(),
  disk: z.string().optional(),
  accel: z.enum(['kvm', 'tcg']).optional(),
  boot: z.enum(['firmware', 'direct']).optional(),
  seconds: z.number().optional(),
  policy: z.enum(['block', 'warn']).optional(),
  log: z.string().optional(),
  banner: z.string().optional(),
  lastLines: z.array(z.string()).optional(),
});

const archState = z.looseObject({
  arch: archSchema,
  step: archStep,
  types: z.array(imageType),
  imageName: z.string(),
  worker: z.string().optional(),
  error: z.string().optional(),
  runs: z.array(runRecord).optional(),
  artifacts: z.array(artifactRecord),
  uploads: z.record(z.string(), uploadRecord),
  at: z.partialRecord(archStep, iso),
  durations: z.looseObject({ build: z.number().optional(), fetch: z.number().optional() }).optional(),
  smoke: z.array(smokeRecord).optional(),
});

export const buildStateSchema = z
  .looseObject({
    version: z.literal(STATE_VERSION),
    buildId: z.string().min(1),
    inventory: z.string(),
    startedAt: iso,
    finishedAt: iso.optional(),
    status: z.enum(['running', 'succeeded', 'failed', 'partial', 'cancelled']),
    key: z.string().optional(),
    trigger: z.string().optional(),
    source: z.looseObject({ image: z.string(), digest: z.string(), arches: z.partialRecord(archSchema, z.string()) }).optional(),
    published: z
      .looseObject({
        repository: z.string(),
        arches: z.partialRecord(archSchema, z.looseObject({ ref: z.string(), digest: z.string() })),
        list: z.looseObject({ ref: z.string(), digest: z.string(), mediaType: z.string(), tags: z.array(z.string()) }).optional(),
        listError: z.string().optional(),
      })
      .optional(),
    arches: z.partialRecord(archSchema, archState),
    pools: z
      .array(
        z.looseObject({
          pool: z.string(),
          provider: z.string(),
          arch: archSchema,
          id: z.string(),
          data: z.string(),
          host: z.string().optional(),
          lifetime_s: z.number().nonnegative(),
          at: z.looseObject({ requested: iso, ready: iso.optional(), ssh: iso.optional(), released: iso.optional() }),
          releaseError: z.string().optional(),
          owner: z.looseObject({ pid: z.number().int(), host: z.string() }).optional(),
          releasedBy: z.string().optional(),
        }),
      )
      .optional(),
  })
  .superRefine((s, ctx) => {
    for (const [k, a] of Object.entries(s.arches)) {
      if (a && a.arch !== k) ctx.addIssue({ code: 'custom', path: ['arches', k, 'arch'], message: `is ${a.arch}, under the key ${k}` });
    }
  });

/** Why a record could not be read; `file` is the state file's path. */
export type RecordProblem = 'missing' | 'unreadable' | 'json' | 'shape' | 'newer';

export class BuildRecordError extends FarmError {
  constructor(
    readonly file: string,
    readonly problem: RecordProblem,
    message: string,
    hint: string,
    cause?: unknown,
  ) {
    super('STATE', message, { hint, cause });
    this.name = 'BuildRecordError';
  }
}

const DAMAGED_HINT =
  'the file was damaged or edited by hand: restore it from a backup, or move its build directory out of the builds directory (listings pass over it; nothing was changed)';

function describeIssues(error: z.ZodError): string {
  const shown = error.issues.slice(0, 3).map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
  const more = error.issues.length > shown.length ? ` (and ${error.issues.length - shown.length} more)` : '';
  return shown.join('; ') + more;
}

/** Checks parsed JSON; `file` only names it in the error. */
export function parseBuildState(value: unknown, file: string): BuildState {
  const version = (value as { version?: unknown } | null)?.version;
  if (typeof version === 'number' && version > STATE_VERSION) {
    throw new BuildRecordError(
      file,
      'newer',
      `build state ${file} has schema version ${version}; this farm reads version ${STATE_VERSION}`,
      'it was written by a newer farm: use that farm for this build, or upgrade this one (nothing was changed)',
    );
  }
  const r = buildStateSchema.safeParse(value);
  if (!r.success) {
    throw new BuildRecordError(file, 'shape', `build state ${file} is not a farm build record: ${describeIssues(r.error)}`, DAMAGED_HINT, r.error);
  }
  return r.data as BuildState;
}

/** Reads and checks a state file. Throws a BuildRecordError; never changes the file. */
export async function readBuildState(file: string): Promise<BuildState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new BuildRecordError(
      file,
      missing ? 'missing' : 'unreadable',
      `cannot read build state ${file}: ${(err as Error).message}`,
      missing ? 'check the build id: `farm images` or `ls builds/` lists builds' : 'make it readable by the user running farm',
      err,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BuildRecordError(file, 'json', `build state ${file} is not valid JSON (${(err as Error).message})`, DAMAGED_HINT, err);
  }
  return parseBuildState(value, file);
}

// Compile-time: what the schema accepts is a BuildState (fails to compile when they drift apart).
type Parsed = z.infer<typeof buildStateSchema>;
const _inStep: (p: Parsed) => Omit<BuildState, 'arches'> = (p) => p;
void _inStep;
