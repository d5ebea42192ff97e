// Secrets never belong in the inventory: it is committed and shared, and its values show up in plans
// and records. Strict objects already reject unknown keys, but a key that looks like a credential
// gets a specific problem saying where that credential comes from instead.

import type { PathSegment } from './problems.ts';
import type { Draft } from './issues.ts';
import { isRecord } from './zod-walk.ts';
import { kindOf } from '../targets.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const SECRET_WORDS = ['password', 'passwd', 'secret', 'token', 'apikey', 'accesskey', 'privatekey'];

/** password, api_key, SECRET_ACCESS_KEY, apiKey, os-token... (case, '-' and '_' ignored). */
export function isSecretKey(key: string): boolean {
  // token_env, github_secret_env: these name the environment variable holding the secret.
  if (/_env$/i.test(key)) return false;
  const folded = key.toLowerCase().replace(/[-_.\s]/g, '');
  return SECRET_WORDS.some((w) => folded.includes(w));
}

const SSH_FIX = 'authenticate with an SSH key instead: set identity_file (a key file, chmod 600) or load the key into ssh-agent (SSH_AUTH_SOCK)';


function fixFor(path: readonly PathSegment[], data: unknown): string {
  if (path[0] === 'workers') return `delete it; workers ${SSH_FIX}`;
  if (path[0] === 'arches' && path[2] === 'targets' && typeof path[3] === 'number') {
    const arches = isRecord(data) ? data.arches : undefined;
    const section = isRecord(arches) ? arches[String(path[1])] : undefined;
    const targets = isRecord(section) ? section.targets : undefined;
    const target = Array.isArray(targets) ? targets[path[3]] : undefined;
    const credentials = kindOf(isRecord(target) ? target.kind : undefined)?.credentials;
    if (credentials) return `delete it; ${credentials}`;
  }
  return "delete it; credentials come from the environment or the cloud's own credential files, never the inventory";
}

/** Every key anywhere in the document that looks like it holds a secret. */
export function findSecrets(data: unknown): Draft[] {
  const out: Draft[] = [];
  const walk = (v: unknown, path: PathSegment[], depth: number) => {
    if (depth > 32) return; // inventories are shallow; this only stops pathological input
    if (Array.isArray(v)) v.forEach((item, i) => walk(item, [...path, i], depth + 1));
    else if (isRecord(v)) {
      for (const [key, child] of Object.entries(v)) {
        const at = [...path, key];
        if (/_env$/i.test(key) && isSecretKey(key.slice(0, -4)) && typeof child === 'string' && !ENV_NAME.test(child)) {
          out.push({
            path: at,
            message: `'${key}' names the environment variable that holds a secret, and its value is not such a name`,
            fix: `write the variable's name (e.g. ${key.slice(0, -4).toUpperCase()}), and set that variable in the environment farm runs in`,
          });
        } else if (isSecretKey(key)) {
          out.push({
            path: at,
            message: `'${key}' looks like a secret, and secrets never belong in the inventory (it is committed and shared)`,
            fix: fixFor(at, data),
          });
        } else walk(child, at, depth + 1);
      }
    }
  };
  walk(data, [], 0);
  return out;
}
