// A target's name, used by --only/--skip, in records and in messages.

import type { TargetKind } from './schema.ts';

/**
 * The explicit `name`, else `kind-region` for targets that live in one region (aws-us-east-1),
 * else the kind (libvirt, openstack, and ibmcloud, whose one target spans several regions).
 */
export function resolveTargetName(target: { kind: TargetKind; name?: string | undefined; region?: string | undefined }): string {
  if (target.name) return target.name;
  return target.region ? `${target.kind}-${target.region}` : target.kind;
}
