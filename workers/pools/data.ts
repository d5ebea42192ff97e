// resalloc's resource data, as `resalloc ticket-wait` prints it and Copr's backend reads it: one
// line with a host name or address, or YAML whose first line is `---` with `host` and an optional
// `ssh_port`. The `command` provider's allocate command prints the same.

import { parse } from 'yaml';
import { FarmError } from '../../src/core/errors.ts';

export interface ResourceData {
  host: string;
  port?: number | undefined;
}

// A host name or an address (IPv6 too); nothing that could be an option or a shell word.
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]+\]?)$/;

/** Parses the data; `what` names its source in errors ("resalloc ticket 12 (arch_x86_64)"). */
export function parseResourceData(text: string, what: string): ResourceData {
  const trimmed = text.replace(/^\s*\n/, '').trimEnd();
  if (trimmed === '') throw new FarmError('WORKER_UNHEALTHY', `${what} printed no resource data`);
  if (trimmed.split('\n')[0]!.trim() === '---') {
    let doc: unknown;
    try {
      doc = parse(trimmed);
    } catch (err) {
      throw new FarmError('WORKER_UNHEALTHY', `${what} printed YAML that does not parse: ${(err as Error).message}`);
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new FarmError('WORKER_UNHEALTHY', `${what} printed YAML that is not a mapping`);
    const { host, ssh_port: port } = doc as { host?: unknown; ssh_port?: unknown };
    if (typeof host !== 'string' || !HOST.test(host.trim())) {
      throw new FarmError('WORKER_UNHEALTHY', `${what} printed YAML without a usable host (got ${JSON.stringify(host)})`);
    }
    const p = typeof port === 'string' && /^\d+$/.test(port) ? Number(port) : port;
    if (p !== undefined && p !== null && !(typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535)) {
      throw new FarmError('WORKER_UNHEALTHY', `${what} printed ssh_port ${JSON.stringify(port)}, not a port number`);
    }
    return { host: stripBrackets(host.trim()), ...(typeof p === 'number' ? { port: p } : {}) };
  }
  const lines = trimmed.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.length !== 1 || !HOST.test(lines[0]!)) {
    throw new FarmError('WORKER_UNHEALTHY', `${what} printed ${JSON.stringify(trimmed.slice(0, 200))}: expected one line with a host, or YAML starting with ---`);
  }
  return { host: stripBrackets(lines[0]!) };
}

function stripBrackets(h: string): string {
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}
