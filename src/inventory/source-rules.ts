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

/** Checks source.context against `/` and the builds dir; relative paths resolve against `dir`. */
export function sourceChecks(data: unknown, dir: string): Draft[] {
  if (!isRecord(data)) return [];
  const source = isRecord(data.source) ? data.source : undefined;
  const settings = isRecord(data.settings) ? data.settings : {};
  const givenContext = source?.context === undefined ? DEFAULT_CONTEXT : str(source.context);
  const givenBuilds = settings.builds_dir === undefined ? DEFAULT_BUILDS_DIR : str(settings.builds_dir);
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
