// Each target kind's own checks (uploaders/<kind>/kind.ts: its rules, and the names of its images
// against what its cloud accepts), run before any build: a name or setting the cloud refuses would
// otherwise fail only after the images are built and uploaded. This module finds each target's
// kind, renders every name it will give, runs the kind's check and places the problems; what the
// rules are is the kind's business.

import { isArch, type Arch } from '../core/arch.ts';
import { TEMPLATE_FIELDS, sampleNames } from '../naming.ts';
import { kindOf } from '../targets.ts';
import { nameRuleProblems, type KindCheckContext } from '../../uploaders/kind.ts';
import { namingSchema } from './schema.ts';
import { isRecord } from './zod-walk.ts';
import type { Draft } from './issues.ts';
import type { PathSegment } from './problems.ts';

const DEFAULTS = namingSchema.parse({});
const KNOWN_FIELDS = new Set<string>(TEMPLATE_FIELDS);

/** A template whose every {field} is known; others are reported by the template check. */
function usable(template: unknown): template is string {
  if (typeof template !== 'string' || template.trim() === '') return false;
  return [...template.matchAll(/\{([^{}]*)\}/g)].every((m) => KNOWN_FIELDS.has(m[1]!));
}

/** The names a target will give, and where they come from; none when its template is unusable or
 *  the inventory's name prefix is invalid (the schema and the template check report those). */
function namesFor(arch: Arch, target: Record<string, unknown>, prefix: string | undefined, inherited: string | undefined): Pick<KindCheckContext, 'names' | 'naming'> {
  const own = target.naming !== undefined;
  const template = own ? target.naming : inherited;
  if (prefix === undefined || !usable(template)) return { names: [] };
  const names = sampleNames(template, { name: prefix, arch }).map((s) => ({ arch, imageName: s.name, buildId: s.buildId }));
  return { names, naming: { template, own } };
}

function checkTarget(arch: Arch, raw: Record<string, unknown>, path: PathSegment[], prefix: string | undefined, inherited: string | undefined, env: NodeJS.ProcessEnv): Draft[] {
  const kind = kindOf(raw.kind);
  if (!kind) return []; // the schema reports unknown kinds
  const ctx: KindCheckContext = { arch, env, ...namesFor(arch, raw, prefix, inherited) };
  // Names depend on `naming` only: checked whatever else the schema finds. The kind's own checks
  // take what its schema accepted; a target the schema refuses has its problems reported there,
  // and its kind's rules apply once those are fixed.
  const parsed = kind.schema.safeParse(raw);
  const problems = [...(kind.names ? nameRuleProblems(kind.names, ctx) : []), ...(parsed.success ? kind.check(parsed.data, ctx) : [])];
  return problems.map((p) => ({
    path: [...path, ...p.path],
    message: p.message,
    fix: p.fix ?? `see the ${kind.kind} target settings in inventory/farm.schema.json`,
  }));
}

/** Runs every target's kind checks, for every arch. */
export function targetKindChecks(data: unknown, env: NodeJS.ProcessEnv = process.env): Draft[] {
  if (!isRecord(data) || !isRecord(data.arches)) return [];
  const naming = isRecord(data.naming) ? data.naming : {};
  // An invalid {name} is reported by the schema; names made from it would only repeat that.
  const prefix = naming.name === undefined ? DEFAULTS.name : namingSchema.shape.name.safeParse(naming.name).data;
  const inherited = naming.template === undefined ? DEFAULTS.template : typeof naming.template === 'string' ? naming.template : undefined;
  const out: Draft[] = [];
  for (const [arch, section] of Object.entries(data.arches)) {
    if (!isArch(arch) || !isRecord(section) || !Array.isArray(section.targets)) continue;
    section.targets.forEach((t, i) => {
      if (isRecord(t)) out.push(...checkTarget(arch, t, ['arches', arch, 'targets', i], prefix, inherited, env));
    });
  }
  return out;
}
