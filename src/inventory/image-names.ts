// Every image name each target will give, checked against that target's own rules before any
// build: a name the cloud refuses would otherwise fail only after the images are built and
// uploaded. The rules live with each target kind (uploaders/<kind>/names.ts), which the uploaders
// use too; this module only renders the names and places the problems.

import { isArch, type Arch } from '../core/arch.ts';
import { TEMPLATE_FIELDS, sampleNames } from '../naming.ts';
import { AMI_NAME_ALLOWED, amiNameProblem } from '../../uploaders/aws/names.ts';
import { VPC_NAME_ALLOWED, imageNameProblem as vpcNameProblem, vpcImageName } from '../../uploaders/ibmcloud/names.ts';
import { VOLUME_NAME_ALLOWED, volumeNameProblem } from '../../uploaders/libvirt/names.ts';
import { GLANCE_NAME_ALLOWED, glanceNameProblem } from '../../uploaders/openstack/names.ts';
import { namingSchema, type TargetKind } from './schema.ts';
import { isRecord } from './zod-walk.ts';
import type { Draft } from './issues.ts';
import type { PathSegment } from './problems.ts';

interface NameRule {
  /** The cloud's word for the name, for messages. */
  what: string;
  /** What the target makes of the farm's name before using it (IBM maps '_' and '.'). */
  toTarget?: (name: string) => string;
  problem: (name: string) => string | undefined;
  allowed: string;
}

const RULES: Record<TargetKind, NameRule> = {
  aws: { what: 'AWS AMI', problem: amiNameProblem, allowed: AMI_NAME_ALLOWED },
  ibmcloud: { what: 'IBM Cloud VPC image', toTarget: vpcImageName, problem: vpcNameProblem, allowed: VPC_NAME_ALLOWED },
  libvirt: { what: 'libvirt volume', problem: volumeNameProblem, allowed: VOLUME_NAME_ALLOWED },
  openstack: { what: 'Glance image', problem: glanceNameProblem, allowed: GLANCE_NAME_ALLOWED },
};

const DEFAULTS = namingSchema.parse({});
const KNOWN_FIELDS = new Set<string>(TEMPLATE_FIELDS);

/** A template whose every {field} is known; others are reported by the template check. */
function usable(template: unknown): template is string {
  if (typeof template !== 'string' || template.trim() === '') return false;
  return [...template.matchAll(/\{([^{}]*)\}/g)].every((m) => KNOWN_FIELDS.has(m[1]!));
}

function checkTarget(arch: Arch, target: Record<string, unknown>, path: PathSegment[], prefix: string, inherited: string | undefined): Draft[] {
  const rule = RULES[target.kind as TargetKind];
  if (!rule) return []; // the schema reports unknown kinds
  const own = target.naming !== undefined;
  const template = own ? target.naming : inherited;
  if (!usable(template)) return [];
  for (const sample of sampleNames(template, { name: prefix, arch })) {
    const name = rule.toTarget ? rule.toTarget(sample.name) : sample.name;
    const problem = rule.problem(name);
    if (!problem) continue;
    const source = own ? `this target's naming '${template}'` : `naming.template '${template}'`;
    const mapped = name === sample.name ? '' : ` (the farm's '${sample.name}' as ${rule.what} names are written)`;
    const widest = sample.buildId.includes('-') ? `, for a build that is the 99th to start in its second (build id ${sample.buildId})` : '';
    return [
      {
        path: own ? [...path, 'naming'] : path,
        message: `${rule.what} name refused: ${source} gives '${name}' for ${arch}${mapped}${widest}: ${problem}`,
        fix: `${own ? 'change naming' : 'set naming: on this target (or change naming.template)'} to a template whose names are ${rule.allowed}`,
      },
    ];
  }
  return [];
}

/** Checks the name every target of every arch will give its images. */
export function imageNameChecks(data: unknown): Draft[] {
  if (!isRecord(data) || !isRecord(data.arches)) return [];
  const naming = isRecord(data.naming) ? data.naming : {};
  // An invalid {name} is reported by the schema; names made from it would only repeat that.
  const prefix = naming.name === undefined ? DEFAULTS.name : namingSchema.shape.name.safeParse(naming.name).data;
  if (prefix === undefined) return [];
  const inherited = naming.template === undefined ? DEFAULTS.template : typeof naming.template === 'string' ? naming.template : undefined;
  const out: Draft[] = [];
  for (const [arch, section] of Object.entries(data.arches)) {
    if (!isArch(arch) || !isRecord(section) || !Array.isArray(section.targets)) continue;
    section.targets.forEach((t, i) => {
      if (isRecord(t)) out.push(...checkTarget(arch, t, ['arches', arch, 'targets', i], prefix, inherited));
    });
  }
  return out;
}
