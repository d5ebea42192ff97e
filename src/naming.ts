// Build ids and image names. A build id is the UTC start time (unique per second, sortable,
// safe in paths and cloud names): 20261121t101500z. Image names come from a template so that new
// images never overwrite ones in use.

import type { Arch } from './core/arch.ts';

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

export function utcParts(date: Date): { date: string; time: string } {
  return {
    date: `${date.getUTCFullYear()}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}`,
    time: `${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}`,
  };
}

export function makeBuildId(date: Date): string {
  const { date: d, time: t } = utcParts(date);
  return `${d}t${t}z`;
}

const BUILD_ID = /^(\d{4})(\d{2})(\d{2})t(\d{2})(\d{2})(\d{2})z(?:-(\d+))?$/;

export function isBuildId(value: string): boolean {
  return BUILD_ID.test(value);
}

/** The time a build id names (its UTC start). */
export function buildIdDate(id: string): Date {
  const m = BUILD_ID.exec(id);
  if (!m) throw new Error(`not a build id: ${id}`);
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  return new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
}

export const TEMPLATE_FIELDS = ['name', 'arch', 'date', 'time', 'build_id'] as const;

/** Expands {name} {arch} {date} {time} {build_id}; unknown fields are an error, not left in names. */
export function renderName(
  template: string,
  fields: { name: string; arch: Arch; buildId: string },
): string {
  const { date, time } = utcParts(buildIdDate(fields.buildId));
  const values: Record<string, string> = { name: fields.name, arch: fields.arch, date, time, build_id: fields.buildId };
  return template.replace(/\{([a-z_]+)\}/g, (whole, key: string) => {
    const v = values[key];
    if (v === undefined) {
      throw new Error(`unknown field ${whole} in name template '${template}': use ${TEMPLATE_FIELDS.map((f) => `{${f}}`).join(' ')}`);
    }
    return v;
  });
}

/**
 * Build ids at both ends of their width, for checking names before any build: an id alone, and
 * with the largest suffix a build started in the same second can get (-2 ... -99, see
 * claimBuildDir in src/pipeline/run-build.ts). {date} and {time} are always 8 and 6 digits.
 */
export const SAMPLE_BUILD_IDS = ['20261231t235959z', '20261231t235959z-99'] as const;

/** The names a template gives for an arch, one per sample build id (duplicates dropped). */
export function sampleNames(template: string, fields: { name: string; arch: Arch }): Array<{ name: string; buildId: string }> {
  const out: Array<{ name: string; buildId: string }> = [];
  for (const buildId of SAMPLE_BUILD_IDS) {
    const name = renderName(template, { ...fields, buildId });
    if (!out.some((o) => o.name === name)) out.push({ name, buildId });
  }
  return out;
}
