// Rules the schema cannot express: names unique, targets only where their kind takes that arch,
// something able to build every arch that has work (each kind's own rules: target-checks.ts). They read the raw document defensively, so
// they run even when the schema found problems and everything is reported in one go; a value the
// schema already rejects is skipped here rather than reported twice.

import { isArch, type Arch } from '../core/arch.ts';
import { TEMPLATE_FIELDS } from '../naming.ts';
import { KINDS, kindOf } from '../targets.ts';
import { workerSchema } from './schema.ts';
import { resolveTargetName } from './target-name.ts';
import { closest, suggestArch } from './suggest.ts';
import { isRecord } from './zod-walk.ts';
import type { Draft } from './issues.ts';
import type { PathSegment } from './problems.ts';

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v : undefined);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function checkTemplate(template: unknown, path: PathSegment[]): Draft[] {
  if (typeof template !== 'string') return [];
  const out: Draft[] = [];
  for (const m of template.matchAll(/\{([^{}]*)\}/g)) {
    const field = m[1]!;
    if ((TEMPLATE_FIELDS as readonly string[]).includes(field)) continue;
    const guess = closest(field, TEMPLATE_FIELDS);
    out.push({
      path,
      message: `unknown field {${field}} in name template '${template}'${guess ? ` (did you mean {${guess}}?)` : ''}`,
      fix: `use ${TEMPLATE_FIELDS.map((f) => `{${f}}`).join(' ')}`,
    });
  }
  return out;
}

const DEFAULT_STORAGE = workerSchema.shape.storage.parse(undefined);
const DEFAULT_OUTPUT = workerSchema.shape.output_dir.parse(undefined);
const within = (a: string, b: string) => a === b || a.startsWith(`${b}/`);

/** bib mounts both: outputs inside container storage (or the reverse) corrupt one or the other. */
function checkOverlap(w: Record<string, unknown>, i: number): Draft[] {
  const storage = w.storage === undefined ? DEFAULT_STORAGE : str(w.storage);
  const output = w.output_dir === undefined ? DEFAULT_OUTPUT : str(w.output_dir);
  if (!storage?.startsWith('/') || !output?.startsWith('/') || !(within(storage, output) || within(output, storage))) return [];
  return [
    {
      path: ['workers', i, w.output_dir === undefined ? 'storage' : 'output_dir'],
      message: `output_dir ${output} and storage ${storage} overlap: bib would write disk images into container storage, and the farm removes outputs after each fetch`,
      fix: `give them separate directories, e.g. output_dir: ${DEFAULT_OUTPUT === storage ? '/var/lib/farm-output' : DEFAULT_OUTPUT}`,
    },
  ];
}

function checkWorkers(workers: unknown[]): Draft[] {
  const out: Draft[] = [];
  const seen = new Map<string, number>();
  workers.forEach((w, i) => {
    if (!isRecord(w)) return;
    out.push(...checkOverlap(w, i));
    const name = str(w.name);
    if (name === undefined) return;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, i);
    else {
      out.push({
        path: ['workers', i, 'name'],
        message: `duplicate worker name '${name}' (workers[${first}] has it too)`,
        fix: 'give each worker a unique name, e.g. builder-<arch>-2',
      });
    }
  });
  return out;
}

function checkTarget(arch: Arch, target: Record<string, unknown>, path: PathSegment[]): Draft[] {
  const out: Draft[] = [];
  const kind = kindOf(target.kind);
  if (!kind) return out; // the schema reports unknown kinds

  const allowed = kind.arches;
  if (!allowed.includes(arch)) {
    const anyArch = KINDS.filter((k) => k.arches.includes(arch)).map((k) => k.kind);
    out.push({
      path: [...path, 'kind'],
      message: `${kind.archNote ?? `${kind.kind} takes ${allowed.join(', ')} only`}; ${kind.kind} targets cannot take ${arch} images`,
      fix: `move this target to ${allowed.map((a) => `arches.${a}`).join(' or ')}; ${arch} images can go to ${anyArch.join(' or ')} targets`,
    });
  }

  if (target.naming !== undefined) out.push(...checkTemplate(target.naming, [...path, 'naming']));
  return out;
}

function checkArch(arch: Arch, section: Record<string, unknown>, workerArches: Set<string>, guessedArches: Set<string>): Draft[] {
  const out: Draft[] = [];
  const base: PathSegment[] = ['arches', arch];
  const targets = list(section.targets);
  const names = new Map<string, number>();
  targets.forEach((t, i) => {
    if (!isRecord(t)) return;
    const path = [...base, 'targets', i];
    out.push(...checkTarget(arch, t, path));
    const kind = kindOf(t.kind);
    if (!kind) return;
    const explicit = typeof t.name === 'string' ? t.name : undefined;
    const region = typeof t.region === 'string' ? t.region : undefined;
    const name = resolveTargetName({ kind: kind.kind, name: explicit, region });
    const first = names.get(name);
    if (first === undefined) names.set(name, i);
    else {
      out.push({
        path: explicit ? [...path, 'name'] : path,
        message: `duplicate target name '${name}' in arches.${arch} (targets[${first}] has it too${explicit ? '' : ', by default'})`,
        fix: 'give one of them a distinct name: (--only and --skip select targets by name)',
      });
    }
  });

  const hasWork = targets.length > 0 || list(section.types).length > 0;
  // A worker whose misspelt arch means this one is reported already; don't pile on.
  if (hasWork && !workerArches.has(arch) && !guessedArches.has(arch)) {
    out.push({
      path: base,
      message: `${targets.length > 0 ? 'targets' : 'types'} for ${arch} but no worker has arch ${arch}: nothing could build them`,
      fix: `add a worker with arch: ${arch}, or remove the arches.${arch} section`,
    });
  }
  return out;
}

/** Pool names are unique among workers and pools: both name the hosts in records and messages. */
function checkPools(pools: unknown[], workers: unknown[]): Draft[] {
  const out: Draft[] = [];
  const seen = new Map<string, string>();
  workers.forEach((w, i) => isRecord(w) && str(w.name) && seen.set(str(w.name)!, `workers[${i}]`));
  pools.forEach((p, i) => {
    if (!isRecord(p)) return;
    const name = str(p.name);
    if (name === undefined) return;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, `pools[${i}]`);
    else out.push({ path: ['pools', i, 'name'], message: `duplicate name '${name}' (${first} has it too)`, fix: 'give each pool a name no worker or other pool has, e.g. resalloc-<arch>' });
  });
  return out;
}

export function semanticChecks(data: unknown): Draft[] {
  if (!isRecord(data)) return [];
  const out: Draft[] = [];
  const workers = list(data.workers);
  out.push(...checkWorkers(workers));

  const workerArches = new Set<string>();
  const guessedArches = new Set<string>();
  const pools = list(data.pools);
  out.push(...checkPools(pools, workers));
  if (workers.length === 0 && pools.length === 0) {
    out.push({
      path: ['workers'],
      message: 'workers needs at least 1 entry',
      fix: 'add one, e.g. workers: [{ name: builder-x86_64, host: <host name>, arch: x86_64 }], or a pool under pools:',
    });
  }
  for (const w of [...workers, ...pools]) {
    if (!isRecord(w) || typeof w.arch !== 'string') continue;
    if (isArch(w.arch)) workerArches.add(w.arch);
    else guessedArches.add(suggestArch(w.arch) ?? '');
  }

  if (isRecord(data.naming)) out.push(...checkTemplate(data.naming.template, ['naming', 'template']));

  if (isRecord(data.arches)) {
    for (const [arch, section] of Object.entries(data.arches)) {
      if (isArch(arch) && isRecord(section)) out.push(...checkArch(arch, section, workerArches, guessedArches));
    }
  }
  return out;
}
