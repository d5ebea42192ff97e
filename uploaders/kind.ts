// A target kind: everything the farm knows about one kind of target (aws, libvirt, ...), in its own
// folder uploaders/<kind>/, exported as `kind` from uploaders/<kind>/kind.ts. The coordinator
// knows kinds only through this interface and the registry (src/targets.ts): the inventory's
// schema composes their schemas, the planner asks for their image type, `inventory check` runs
// their checks and the pipeline asks them for uploaders. Adding a kind is one folder and one line.
//
// The shape is DESIGN-10's, grown where a kind's knowledge had no other home (all additions are
// optional but `ctx.arch`): the arch note, aliases, hints and credentials texts the inventory's
// messages used to hard-code; `names`, the name rule, apart from `check` because names are
// checked even on a target its schema refuses (the problems of both show in one go), while
// `check` sees only typed, schema-valid targets; and `sshEndpoints`, whose key files the
// inventory resolves and checks like a worker's.

import type { z } from 'zod';
import type { Arch } from '../src/core/arch.ts';
import type { SshFiles } from '../src/core/fields.ts';
import type { ImageType } from '../src/core/image-types.ts';
import { nameField, nonEmpty } from '../src/core/fields.ts';
import type { Uploader } from './uploader.ts';
import type { ImageLifecycle } from './lifecycle.ts';
import { FarmError } from '../src/core/errors.ts';

/** A problem with one target, `path` under the target object (e.g. ['hypervisors', 1, 'uri']). */
export interface KindProblem {
  path: (string | number)[];
  message: string;
  fix?: string;
}

export interface KindCheckContext {
  /** The arch section the target is in (arches.<arch>.targets). */
  arch: Arch;
  /** every image name this target will get, per arch (from the inventory's naming); `buildId` is
   *  the sample build id it was rendered with (the widest one a build can get), for messages. */
  names: { arch: Arch; imageName: string; buildId?: string }[];
  /** The template the names come from and whether it is the target's own `naming` (else the
   *  inventory's naming.template), for messages and to point at the right line. */
  naming?: { template: string; own: boolean };
  env: NodeJS.ProcessEnv;
}

export interface TargetKind<T extends { kind: string } = any> {
  readonly kind: T['kind']; // 'aws'
  /** Strict zod object with kind: z.literal('aws') and the TARGET_FIELDS below. */
  readonly schema: z.ZodType<T>;
  /** Arches this kind accepts. */
  readonly arches: readonly Arch[];
  /** Why it takes only those arches, for the problem an arch it cannot take gets (optional). */
  readonly archNote?: string;
  /** Words people write for this kind ('ec2', 'glance'), for "did you mean" (optional). */
  readonly aliases?: readonly string[];
  /** What to write for a required field of its targets that is missing, e.g. { region: '<region>' } (optional). */
  readonly hints?: Readonly<Record<string, string>>;
  /** Where this kind's credentials come from, for the fix of a secret found in its target (optional). */
  readonly credentials?: string;
  /** The bib type it consumes. */
  imageType(target: T): ImageType;
  /** What its cloud accepts as an image name. Checked on every target of the kind, even one the
   *  schema refuses (the name depends only on `naming`), so both problems show in one go. */
  readonly names?: NameRule;
  /** Semantic checks (beyond the schema and the name rule), on a target that passed the schema. */
  check(target: T, ctx: KindCheckContext): KindProblem[];
  /** SSH endpoints the target connects to itself (libvirt's hypervisors), with their path under the
   *  target: the coordinator resolves their files against the inventory's directory (in place) and
   *  checks they exist, as it does for workers (optional). */
  sshEndpoints?(target: T): { path: (string | number)[]; files: SshFiles }[];
  /** The uploader, under the target's resolved name. kind.ts must not import the kind's SDK (the
   *  inventory loads every kind.ts): wrap the real factory in lazyUploader. */
  create(target: T & { name: string }, opts: { env: NodeJS.ProcessEnv }): Uploader;
}

/** The fields every target has, spread into each kind's schema. */
export const TARGET_FIELDS = {
  name: nameField.optional().describe('Target name for --only/--skip (default: kind, or kind-region)'),
  naming: nonEmpty.optional().describe('Image name template for this target'),
};

/** A kind's rule for the names of its images. */
export interface NameRule {
  /** The cloud's word for the name, for messages: 'AWS AMI'. */
  what: string;
  /** What the target makes of the farm's name before using it (IBM maps '_' and '.'). */
  toTarget?: (name: string) => string;
  /** Why the cloud would refuse the name, or undefined. */
  problem: (name: string) => string | undefined;
  /** What the cloud allows, for the fix. */
  allowed: string;
}

/** The first name of ctx.names that `rule` refuses, as a problem at the line the name comes from. */
export function nameRuleProblems(rule: NameRule, ctx: KindCheckContext): KindProblem[] {
  for (const sample of ctx.names) {
    const name = rule.toTarget ? rule.toTarget(sample.imageName) : sample.imageName;
    const problem = rule.problem(name);
    if (!problem) continue;
    const own = ctx.naming?.own ?? false;
    const template = ctx.naming?.template ?? '';
    const source = own ? `this target's naming '${template}'` : `naming.template '${template}'`;
    const mapped = name === sample.imageName ? '' : ` (the farm's '${sample.imageName}' as ${rule.what} names are written)`;
    const widest = sample.buildId?.includes('-') ? `, for a build that is the 99th to start in its second (build id ${sample.buildId})` : '';
    return [
      {
        path: own ? ['naming'] : [],
        message: `${rule.what} name refused: ${source} gives '${name}' for ${sample.arch}${mapped}${widest}: ${problem}`,
        fix: `${own ? 'change naming' : 'set naming: on this target (or change naming.template)'} to a template whose names are ${rule.allowed}`,
      },
    ];
  }
  return [];
}

/**
 * An uploader whose module loads on first use. Loading the inventory (which composes every kind's
 * schema) must not load every cloud's SDK: `farm inventory check` and the CLI stay fast, and a
 * build loads only the kinds it uploads to. Every method of the seam is async, so nothing waits
 * differently; a create that would throw throws from the first call (preflight).
 */
export function lazyUploader(name: string, kind: string, load: () => Promise<Uploader>): Uploader {
  let loading: Promise<Uploader> | undefined;
  const get = () => (loading ??= load());
  return {
    name,
    kind,
    preflight: async (signal) => (await get()).preflight(signal),
    find: async (imageName, artifact, signal) => (await get()).find(imageName, artifact, signal),
    upload: async (artifact, imageName, ctx) => (await get()).upload(artifact, imageName, ctx),
    removeHalfMade: async (objects, signal) => {
      const u = await get();
      if (u.removeHalfMade) return u.removeHalfMade(objects, signal);
      return objects.map((object) => ({ object, error: `the ${kind} uploader cannot remove it; remove it by hand` }));
    },
    // The lifecycle seam (lifecycle.ts): a kind without it says so by name.
    listImages: async (inventory, signal) => (await lifecycleOf(get, kind)).listImages(inventory, signal),
    removeImage: async (image, signal) => (await lifecycleOf(get, kind)).removeImage(image, signal),
    markImage: async (image, change, signal) => (await lifecycleOf(get, kind)).markImage(image, change, signal),
    deprecateImage: async (image, at, signal) => (await lifecycleOf(get, kind)).deprecateImage(image, at, signal),
  };
}

async function lifecycleOf(get: () => Promise<Uploader>, kind: string): Promise<ImageLifecycle> {
  const u = await get();
  if (!u.listImages || !u.removeImage || !u.markImage || !u.deprecateImage) {
    throw new FarmError('UPLOAD', `the ${kind} target kind has no image lifecycle (list, remove, release, deprecate)`);
  }
  return u as Uploader & ImageLifecycle;
}
