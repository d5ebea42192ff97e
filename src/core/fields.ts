// Schema pieces the inventory and the target kinds (uploaders/<kind>/schema.ts) share: names, the
// SSH endpoint fields (workers, and hosts a target kind connects to) and the adapter that lets a rule with a fix
// become a zod issue (code 'custom', the fix in params, which src/inventory/issues.ts shows).

import { z } from 'zod';
import { ARCHES } from './arch.ts';

export interface Rule {
  message: string;
  fix: string;
}

/** The schema `s` with `rule` applied to its value; a value the rule passes over is fine. */
export function ruled<S extends z.ZodType<string>>(s: S, rule: (value: string) => Rule | Rule[] | undefined): S {
  return s.superRefine((value, ctx) => {
    const found = rule(value);
    for (const r of found === undefined ? [] : Array.isArray(found) ? found : [found]) {
      ctx.addIssue({ code: 'custom', message: r.message, params: { fix: r.fix } });
    }
  }) as S;
}

export const archSchema = z.enum(ARCHES);

export const nonEmpty = z.string().trim().min(1);

/** Names of workers, targets and the image prefix: safe in paths, cloud names and --only lists. */
export const nameField = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'use lower-case letters, digits, ".", "_" and "-", starting with a letter or digit');

/** A pinned host key, as `ssh-keygen -lf` prints it; workers and hypervisors share the format. */
export const hostKeyField = z
  .string()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'a pinned key is "SHA256:" and 43 base64 characters, as ssh-keygen -lf prints');

// OpenSSH expands %-tokens and ${VAR} in IdentityFile (so in -i too) and UserKnownHostsFile, and
// reads UserKnownHostsFile as a whitespace-separated list (ssh_config(5): TOKENS, ENVIRONMENT
// VARIABLES, UserKnownHostsFile); the farm hands both to OpenSSH (bulk transfers, a target kind's own ssh).
function expansions(path: string): string[] {
  return [path.includes('%') ? "'%'" : '', path.includes('${') ? "'${'" : ''].filter(Boolean);
}

/** identity_file of workers and hypervisors: a key file OpenSSH opens by this exact name. */
export function identityFileRule(path: string): Rule | undefined {
  const found = expansions(path);
  if (found.length === 0) return undefined;
  return {
    message: `'${path}' contains ${found.join(' and ')}, which OpenSSH expands in identity file names (%h, %u, \${HOME}...): it would read another file`,
    fix: "move or link the key to a path without '%' and '${'",
  };
}

/** known_hosts of workers and hypervisors: OpenSSH's UserKnownHostsFile. */
export function knownHostsRule(path: string): Rule | undefined {
  const found = [...expansions(path), /\s/.test(path) ? 'white space' : '', /["\\]/.test(path) ? 'a quote or backslash' : ''].filter(Boolean);
  if (found.length === 0) return undefined;
  return {
    message: `'${path}' contains ${found.join(' and ')}: OpenSSH expands '%' and '\${' in known_hosts file names and splits them at spaces, so it would read other files`,
    fix: "move or link the file to a plain path (no '%', '${', spaces, quotes or backslashes)",
  };
}

/** A local key file that OpenSSH opens by name (relative to the inventory file's directory). */
export const identityFileField = ruled(nonEmpty, identityFileRule);
/** A local known_hosts file that OpenSSH opens by name. */
export const knownHostsField = ruled(nonEmpty, knownHostsRule);

/** The SSH settings of an endpoint the farm connects to (a worker, a target kind's host): the
 *  coordinator resolves the files against the inventory's directory and checks they exist. */
export interface SshFiles {
  identity_file?: string | undefined;
  known_hosts?: string | undefined;
  host_key?: string | undefined;
}
