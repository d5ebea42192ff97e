// What a build sends: the context directory goes to every worker with every build, so it must not
// be the whole filesystem, nor hold the builds dir (every earlier disk image and build record would
// travel again, and each new build would change the context the next one sends).

import { basename, dirname, relative, sep } from 'node:path';
import { resolveInventoryPath } from './files.ts';
import { settingsSchema, sourceSchema } from './schema.ts';
import { isRecord } from './zod-walk.ts';
import type { Draft } from './issues.ts';

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
const DEFAULT_CONTEXT = sourceSchema.shape.context.parse(undefined);
const DEFAULT_BUILDS_DIR = settingsSchema.shape.builds_dir.parse(undefined);

const inside = (child: string, parent: string) => child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);

/**
 * One source or the other: a Containerfile (with its context and build args) or a prebuilt image,
 * never both, never neither. An image source is built from no local files and by no git clone.
 */
export function sourceKindChecks(data: unknown): Draft[] {
  if (!isRecord(data) || !isRecord(data.source)) return [];
  const source = data.source;
  const has = (k: string) => source[k] !== undefined;
  if (!has('image')) {
    const pub = isRecord(source.publish) ? str(source.publish.image) : undefined;
    if (pub && (pub.includes('@') || (pub.split('/').pop() ?? '').includes(':'))) {
      return [{ path: ['source', 'publish', 'image'], message: `'${pub}' names a tag or digest: the farm tags what it publishes`, fix: `give the repository only (${pub.replace(/@.*$/, '').replace(/:[^/:]*$/, '')}): the list is tagged <build id> (and latest), each arch <build id>-<arch>` }];
    }
    if (has('containerfile')) return has('tls_verify') ? [{ path: ['source', 'tls_verify'], message: 'tls_verify applies to an image source only', fix: 'remove source.tls_verify (the Containerfile is built on the workers)' }] : [];
    return [
      {
        path: ['source', 'containerfile'],
        message: 'the source names neither a Containerfile nor an image',
        fix: 'add source.containerfile: ./Containerfile to build one, or source.image: REGISTRY/REPO:TAG to pull a prebuilt multi-arch image',
        missing: true,
      },
    ];
  }
  const out: Draft[] = [];
  for (const k of ['containerfile', 'context', 'build_args', 'publish']) {
    if (has(k)) {
      out.push({
        path: ['source', k],
        message: k === 'publish' ? 'source.publish (publish_image) is set beside source.image: the farm publishes only images it builds from a Containerfile' : `source.${k} is set beside source.image: the inventory takes one source or the other, never both`,
        fix:
          k === 'containerfile'
            ? 'keep source.image to pull the prebuilt image, or remove it to build the Containerfile'
            : k === 'publish'
              ? 'remove source.publish: the image source is published already; publish_image pushes images the farm builds from a Containerfile'
              : `remove source.${k}: it applies to a Containerfile source only`,
      });
    }
  }
  const service = isRecord(data.service) && isRecord(data.service.source) ? data.service.source : undefined;
  if (service && service.git !== undefined) {
    out.push({ path: ['service', 'source', 'git'], message: 'service.source.git builds a Containerfile from git, but source.image pulls a prebuilt image', fix: 'remove service.source.git: `farm serve` polls the image tag itself' });
  }
  return out;
}

/** Checks source.context against `/` and the builds dir; relative paths resolve against `dir`. */
export function sourceChecks(data: unknown, dir: string): Draft[] {
  if (!isRecord(data)) return [];
  const source = isRecord(data.source) ? data.source : undefined;
  // An image source sends no context.
  if (source?.image !== undefined) return sourceKindChecks(data);
  const settings = isRecord(data.settings) ? data.settings : {};
  const givenContext = source?.context === undefined ? DEFAULT_CONTEXT : str(source.context);
  const givenBuilds = settings.builds_dir === undefined ? DEFAULT_BUILDS_DIR : str(settings.builds_dir);
  const kind = sourceKindChecks(data);
  if (kind.length) return kind;
  if (source === undefined || givenContext === undefined || givenBuilds === undefined) return []; // the schema reports these
  const context = resolveInventoryPath(givenContext, dir);
  if (context === '/') {
    return [
      {
        path: ['source', 'context'],
        message: "the build context is '/', the whole filesystem of this host: every build would send it to every worker",
        fix: 'point source.context at the directory holding what the Containerfile copies (often the Containerfile\'s own directory)',
      },
    ];
  }
  const builds = resolveInventoryPath(givenBuilds, dir);
  if (!inside(builds, context)) return [];
  const named = settings.builds_dir !== undefined;
  const nextToContext = relative(dir, `${dirname(context)}${sep}${basename(context)}-builds`) || '.';
  return [
    {
      // Where the fix goes: the builds_dir line, or where it is to be added.
      path: ['settings', 'builds_dir'],
      message: `${named ? 'the builds dir' : `builds_dir is not set, so builds go to`} ${builds}, inside the build context ${context}: earlier disk images and build records would be part of every build's context`,
      fix: `set settings.builds_dir outside the context, e.g. builds_dir: /var/lib/farm/builds, or builds_dir: ${nextToContext}`,
    },
  ];
}
