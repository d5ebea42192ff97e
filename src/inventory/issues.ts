// Turns zod's issues into problems a person can act on: what is wrong in the inventory's terms
// (unknown key, unknown arch, missing field) and the concrete fix, with a "did you mean" for typos.

import type { z } from 'zod';
import { ARCHES, isArch } from '../core/arch.ts';
import { inventorySchema, targetSchema } from './schema.ts';
import { KINDS, KIND_NAMES } from '../targets.ts';
import { closest, suggestArch } from './suggest.ts';
import { isSecretKey } from './secrets.ts';
import { isOptional, isRecord, objectKeys, schemaAt, unionOptions } from './zod-walk.ts';
import type { PathSegment } from './problems.ts';

/** A problem before it is placed in the file: `path` is both the field shown and where to point. */
export interface Draft {
  path: PathSegment[];
  message: string;
  fix: string;
  /** Set on "missing required field" problems. */
  missing?: boolean;
  /** Set on unknown-key problems that look like a typo of this key. */
  renameTo?: string;
}

const sameParent = (a: readonly PathSegment[], b: readonly PathSegment[]) =>
  a.length === b.length && a.slice(0, -1).every((seg, i) => seg === b[i]);

/** Drops "missing 'host'" where the same object has a key that looks like a typo of host. */
export function dropExplainedMissing(drafts: Draft[]): Draft[] {
  const typos = drafts.filter((d) => d.renameTo !== undefined);
  return drafts.filter(
    (d) => !d.missing || !typos.some((t) => t.renameTo === d.path[d.path.length - 1] && sameParent(t.path, d.path)),
  );
}

type Issue = z.core.$ZodIssue;

/** Optional, but one of them is needed (the source is a Containerfile or an image): not to be deleted. */
const ONE_OF = new Set(['source.containerfile', 'source.image']);

function deletable(path: PathSegment[], data: unknown): boolean {
  return !ONE_OF.has(path.join('.')) && isOptional(inventorySchema, path, data);
}

const ARCH_LIST = ARCHES.join(', ');

/** Words people write for a kind ('ec2'), from each kind's aliases. */
const KIND_ALIASES: Record<string, string> = Object.fromEntries(KINDS.flatMap((k) => (k.aliases ?? []).map((a) => [a, k.kind])));

/** What to write for a required field that is missing. */
const MISSING_HINTS: Record<string, string> = {
  version: '1',
  source: '{ containerfile: ./Containerfile }',
  containerfile: '<path of the Containerfile, relative to the inventory file>',
  image: '<REGISTRY/REPO:TAG of a prebuilt multi-arch image>',
  workers: '[{ name: builder-x86_64, host: <host name>, arch: x86_64 }]',
  name: '<a lower-case name>',
  host: "<the worker's host name or address>",
  arch: `<one of ${ARCH_LIST}>`,
  kind: `<one of ${KIND_NAMES.join(', ')}>`,
  // Then each kind's own (the first kind to name a field gives its hint).
  ...Object.fromEntries(KINDS.flatMap((k) => Object.entries(k.hints ?? {})).reverse()),
};

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping (key: value entries)',
  record: 'a mapping (key: value entries)',
  array: 'a list',
  undefined: 'nothing',
};

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let v = data;
  for (const seg of path) {
    if (Array.isArray(v)) v = v[Number(seg)];
    else if (isRecord(v)) v = v[String(seg)];
    else return undefined;
  }
  return v;
}

export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  if (Array.isArray(v)) return 'a list';
  return 'a mapping';
}

const show = (v: unknown) => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v) ?? String(v));

/** The field's name for messages: `arch`, or `share_accounts entry` for a list item. */
function fieldName(path: readonly PathSegment[]): string {
  const last = path[path.length - 1];
  if (typeof last === 'number') {
    const owner = [...path].reverse().find((s): s is string => typeof s === 'string');
    return owner ? `${owner} entry` : 'entry';
  }
  return last ?? 'inventory';
}

function archDraft(path: PathSegment[], value: unknown): Draft {
  const guess = typeof value === 'string' ? suggestArch(value) : undefined;
  return {
    path,
    message: `unknown arch ${show(value)}${guess ? ` (did you mean ${guess}?)` : ''}`,
    fix: `use one of ${ARCH_LIST}`,
  };
}

function isArchEnum(values: readonly unknown[]): boolean {
  return values.length === ARCHES.length && values.every((v) => typeof v === 'string' && isArch(v));
}

function unknownKey(parent: PathSegment[], key: string, data: unknown): Draft | undefined {
  const path = [...parent, key];
  // Secret-looking keys get their own, more specific problem from the secrets scan.
  if (isSecretKey(key)) return undefined;
  if (parent.length === 1 && parent[0] === 'arches') return archDraft(path, key);

  const allowed = objectKeys(schemaAt(inventorySchema, parent, data));
  const list = allowed.join(', ');
  const guess = closest(key, allowed);
  if (guess) {
    return {
      path,
      message: `unknown key '${key}' (did you mean '${guess}'?)`,
      fix: `rename it to '${guess}'; keys allowed here: ${list}`,
      renameTo: guess,
    };
  }
  if (parent.length === 0 && (isArch(key) || suggestArch(key))) {
    return { path, message: `unknown key '${key}'`, fix: `per-arch settings go under arches:, e.g. arches: { ${suggestArch(key) ?? key}: { targets: [...] } }` };
  }
  const parentValue = valueAt(data, parent);
  if (isRecord(parentValue) && typeof parentValue.kind === 'string' && parent.includes('targets')) {
    const owners = Object.entries(unionOptions(targetSchema))
      .filter(([kind, s]) => kind !== parentValue.kind && objectKeys(s).includes(key))
      .map(([kind]) => kind);
    if (owners.length > 0) {
      return {
        path,
        message: `'${key}' is not a setting of ${parentValue.kind} targets (it belongs to ${owners.join(', ')} targets)`,
        fix: `remove it, or move it to a target of kind ${owners[0]}; keys allowed here: ${list}`,
      };
    }
  }
  return { path, message: `unknown key '${key}'`, fix: allowed.length ? `remove it; keys allowed here: ${list}` : 'remove it' };
}

function invalidType(issue: Extract<Issue, { code: 'invalid_type' }>, path: PathSegment[], data: unknown): Draft {
  const value = valueAt(data, path);
  const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
  const name = fieldName(path);
  if (path.length === 0) {
    return value === undefined || value === null
      ? { path, message: 'the inventory file is empty', fix: 'start from inventory/farm.yaml in the farm repository' }
      : { path, message: `the inventory must be a mapping of keys, not ${describeValue(value)}`, fix: 'start from inventory/farm.yaml in the farm repository' };
  }
  if (value === undefined) {
    const hint = MISSING_HINTS[name] ?? `<${expected}>`;
    return { path, message: `missing required field '${name}'`, fix: `add ${name}: ${hint}`, missing: true };
  }
  if (value === null) {
    const optional = deletable(path, data);
    return {
      path,
      message: `'${name}' is empty (expected ${expected})`,
      fix: optional ? 'give it a value or delete the line' : `give it a value: ${MISSING_HINTS[name] ?? expected}`,
    };
  }
  let fix = `write ${expected} here`;
  if ((issue.expected === 'number' || issue.expected === 'int') && typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))) {
    fix = `remove the quotes: ${name}: ${value.trim()}`;
  } else if (issue.expected === 'int' && typeof value === 'number') {
    fix = `use a whole number, e.g. ${name}: ${Math.round(value)}`;
  } else if (issue.expected === 'string' && (typeof value === 'number' || typeof value === 'boolean')) {
    fix = `quote it: ${name}: "${String(value)}"`;
  } else if (issue.expected === 'boolean' && typeof value === 'string' && /^(yes|no|on|off|true|false)$/i.test(value)) {
    fix = `write ${/^(yes|on|true)$/i.test(value) ? 'true' : 'false'} (unquoted, lower case)`;
  } else if (issue.expected === 'array' && value !== null && typeof value !== 'object') {
    fix = `write a list, e.g. ${name}: [${typeof value === 'string' ? value : JSON.stringify(value)}]`;
  }
  return { path, message: `expected ${expected}, got ${describeValue(value)}`, fix };
}

function invalidValue(issue: Extract<Issue, { code: 'invalid_value' }>, path: PathSegment[], data: unknown): Draft {
  const value = valueAt(data, path);
  if (isArchEnum(issue.values)) return archDraft(path, value);
  if (path.length === 1 && path[0] === 'version') {
    const quoted = typeof value === 'string' && value.trim() === '1';
    return {
      path,
      message: quoted ? 'the version is a string' : `unsupported inventory version ${show(value)}`,
      fix: quoted ? 'remove the quotes: version: 1' : 'set version: 1 (the only format this farm reads)',
    };
  }
  const allowed = issue.values.map(String);
  const guess = typeof value === 'string' ? closest(value, allowed) : undefined;
  return {
    path,
    message: `${show(value)} is not a valid ${fieldName(path)}${guess ? ` (did you mean '${guess}'?)` : ''}`,
    fix: `use one of ${allowed.join(', ')}`,
  };
}

function invalidUnion(issue: Extract<Issue, { code: 'invalid_union' }>, path: PathSegment[], data: unknown): Draft {
  const options = 'options' in issue && issue.options ? issue.options.map(String) : [];
  if (issue.discriminator && options.length > 0) {
    const value = valueAt(data, path);
    const list = options.join(', ');
    if (value === undefined || value === null) {
      return { path, message: `this target has no ${issue.discriminator}`, fix: `add ${issue.discriminator}: <one of ${list}>` };
    }
    const guess = typeof value === 'string' ? (KIND_ALIASES[value.toLowerCase()] ?? closest(value, options)) : undefined;
    return {
      path,
      message: `unknown target ${issue.discriminator} ${show(value)}${guess ? ` (did you mean ${guess}?)` : ''}`,
      fix: `use one of ${list}`,
    };
  }
  return { path, message: issue.message, fix: 'see inventory/farm.schema.json for the accepted forms' };
}

function sizeDraft(issue: Extract<Issue, { code: 'too_small' | 'too_big' }>, path: PathSegment[], data: unknown): Draft {
  const value = valueAt(data, path);
  const name = fieldName(path);
  const small = issue.code === 'too_small';
  const bound = Number(small ? (issue as { minimum: number | bigint }).minimum : (issue as { maximum: number | bigint }).maximum);
  const inclusive = issue.inclusive !== false;
  if (issue.origin === 'string' && small) {
    return { path, message: `'${name}' is empty`, fix: deletable(path, data) ? 'give it a value or delete the line' : `give it a value: ${MISSING_HINTS[name] ?? 'a non-empty string'}` };
  }
  if (issue.origin === 'array' && small) {
    const hint = MISSING_HINTS[name];
    return {
      path,
      message: `${name} needs at least ${bound} entr${bound === 1 ? 'y' : 'ies'}`,
      fix: hint ? `add one, e.g. ${name}: ${hint}` : `add at least ${bound}, or delete the line`,
    };
  }
  const op = small ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<';
  return {
    path,
    message: `${show(value)} is too ${small ? 'small' : 'large'} for ${name}`,
    fix: `use a ${issue.origin === 'array' ? 'list with a length' : 'value'} ${op} ${bound}`,
  };
}

/** The problems one zod issue stands for (unknown keys come as one issue for several keys). */
export function issueToDrafts(issue: Issue, data: unknown): Draft[] {
  const path = issue.path.map((p) => (typeof p === 'number' ? p : String(p)));
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => unknownKey(path, k, data)).filter((d): d is Draft => d !== undefined);
    case 'invalid_type':
      return [invalidType(issue, path, data)];
    case 'invalid_value':
      return [invalidValue(issue, path, data)];
    case 'invalid_union':
      return [invalidUnion(issue, path, data)];
    case 'too_small':
    case 'too_big':
      return [sizeDraft(issue, path, data)];
    case 'invalid_format': {
      const value = valueAt(data, path);
      // The schema's own messages are phrased as the fix; zod's defaults are not.
      const own = !issue.message.startsWith('Invalid');
      return [{ path, message: `invalid ${fieldName(path)} ${show(value)}`, fix: own ? issue.message : `it must match ${issue.pattern ?? issue.format}` }];
    }
    case 'custom': {
      // The schema's own rules (field-rules.ts) carry their fix.
      const fix = (issue.params as { fix?: unknown } | undefined)?.fix;
      return [{ path, message: issue.message, fix: typeof fix === 'string' ? fix : 'see inventory/farm.schema.json for the accepted values' }];
    }
    default:
      return [{ path, message: issue.message, fix: 'see inventory/farm.schema.json for the accepted values' }];
  }
}
