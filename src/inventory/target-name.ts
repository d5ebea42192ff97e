// A target's name, used by --only/--skip, in records and in messages.

/**
 * The explicit `name`, else `kind-region` for targets that live in one region (e.g. a kind whose
 * targets have a `region`), else the kind (kinds whose one target spans several regions or hosts).
 */
export function resolveTargetName(target: { kind: string; name?: string | undefined; region?: string | undefined }): string {
  if (target.name) return target.name;
  return target.region ? `${target.kind}-${target.region}` : target.kind;
}
