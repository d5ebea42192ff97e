// Finds the part of the inventory schema that governs a path, so problems can say which keys are
// allowed where a wrong one was written, and whether a field may be left out.

import type { z } from 'zod';
import type { PathSegment } from './problems.ts';

type Schema = z.ZodType;
interface Def {
  type: string;
  shape?: Record<string, Schema>;
  element?: Schema;
  innerType?: Schema;
  in?: Schema;
  options?: Schema[];
  discriminator?: string;
  valueType?: Schema;
  values?: unknown[];
}

const def = (s: Schema): Def => (s as unknown as { _zod: { def: Def } })._zod.def;
const WRAPPERS = new Set(['optional', 'default', 'prefault', 'nullable', 'nonoptional', 'readonly', 'catch']);

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function unwrap(s: Schema): Schema {
  for (let i = 0; i < 16; i++) {
    const d = def(s);
    if (WRAPPERS.has(d.type) && d.innerType) s = d.innerType;
    else if (d.type === 'pipe' && d.in) s = d.in;
    else break;
  }
  return s;
}

/** The option of a discriminated union that `value` selects (by its `kind`), if any. */
function pickOption(s: Schema, value: unknown): Schema | undefined {
  const d = def(s);
  if (d.type !== 'union') return s;
  if (!d.discriminator || !isRecord(value)) return undefined;
  const tag = value[d.discriminator];
  return d.options?.find((o) => {
    const field = def(unwrap(o)).shape?.[d.discriminator!];
    return field !== undefined && (def(field).values ?? []).includes(tag);
  });
}

/** The schema for `path` inside `data` (used to pick union options), unwrapped; undefined off-schema. */
export function schemaAt(root: Schema, path: readonly PathSegment[], data: unknown): Schema | undefined {
  let s: Schema | undefined = root;
  let v = data;
  for (const seg of path) {
    s = pickOption(unwrap(s), v);
    if (!s) return undefined;
    const d = def(s);
    if (d.type === 'object') s = d.shape?.[String(seg)];
    else if (d.type === 'array') s = d.element;
    else if (d.type === 'record') s = d.valueType;
    else return undefined;
    if (!s) return undefined;
    v = Array.isArray(v) ? v[Number(seg)] : isRecord(v) ? v[String(seg)] : undefined;
  }
  return s ? pickOption(unwrap(s), v) : undefined;
}

/** The keys an object schema allows; empty when `s` is not an object. */
export function objectKeys(s: Schema | undefined): string[] {
  if (!s) return [];
  const d = def(unwrap(s));
  return d.type === 'object' ? Object.keys(d.shape ?? {}) : [];
}

/** Options of a discriminated union by tag value, e.g. { <kind>: <schema>, ... } for targets. */
export function unionOptions(s: Schema): Record<string, Schema> {
  const d = def(unwrap(s));
  const out: Record<string, Schema> = {};
  if (d.type !== 'union' || !d.discriminator) return out;
  for (const o of d.options ?? []) {
    const field = def(unwrap(o)).shape?.[d.discriminator];
    for (const tag of (field && def(field).values) ?? []) out[String(tag)] = o;
  }
  return out;
}

/** Whether the field may be left out (optional or defaulted). */
export function isOptional(root: Schema, path: readonly PathSegment[], data: unknown): boolean {
  const last = path[path.length - 1];
  const parent = last === undefined ? undefined : schemaAt(root, path.slice(0, -1), data);
  if (!parent || def(parent).type !== 'object') return false;
  // The parent's shape keeps the field's own optional/default wrapper, which schemaAt unwraps away.
  const field = def(parent).shape?.[String(last)];
  return field ? field.safeParse(undefined).success : false;
}
