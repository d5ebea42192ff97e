// Which Host headers the service answers. A page on any site can make a browser send requests to
// 127.0.0.1:8080 under its own name (DNS rebinding: evil.example resolves to 127.0.0.1 after the
// page loaded), and read the answers as same-origin. Those requests carry Host: evil.example, so
// the service answers only names it knows: the listen host, service.public_url's host, localhost
// and IP literals (which no rebinding can produce, since the page's origin would be the IP itself).
// Names are checked, not ports: rebinding changes the name, and a proxy may rewrite the port.

import { isIP } from 'node:net';
import { printable } from './printable.ts';

export type HostVerdict = { ok: true } | { ok: false; status: 400 | 421; message: string };

const WILDCARD = new Set(['0.0.0.0', '::', '']);

export class HostCheck {
  private readonly names: Set<string>;

  constructor(listenHost: string, publicUrl?: string) {
    this.names = new Set(['localhost']);
    const listen = listenHost.toLowerCase().replace(/^\[|\]$/g, '');
    if (!WILDCARD.has(listen) && !isIP(listen)) this.names.add(listen);
    if (publicUrl) this.names.add(new URL(publicUrl).hostname.toLowerCase());
  }

  /** The names it answers, for the refusal message and the docs. */
  get known(): string[] {
    return [...this.names];
  }

  check(header: string | undefined): HostVerdict {
    if (!header) return { ok: false, status: 400, message: 'a Host header is required' };
    const name = hostname(header);
    if (name === undefined) return { ok: false, status: 400, message: `malformed Host header "${printable(header, 100)}"` };
    if (isIP(name) || this.names.has(name)) return { ok: true };
    return {
      ok: false,
      status: 421,
      message: `this service does not answer to "${printable(name, 100)}" (it answers to ${this.known.join(', ')} and IP addresses): set service.public_url to the address clients use`,
    };
  }
}

/** The name of a Host header ("Farm.example.org.:8080" → "farm.example.org", "[::1]:80" → "::1"). */
function hostname(header: string): string | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::\d{1,5})?$/.exec(header.trim());
  if (!m) return undefined;
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? m[1].toLowerCase() : undefined;
  return m[2]!.toLowerCase().replace(/\.$/, '');
}
