// The part of bib's build config (/config.toml or /config.json) the stand-in honours: the
// minimum size of the "/" filesystem. Other customizations are reported as ignored.
//   [[customizations.filesystem]]
//   mountpoint = "/"
//   minsize = "10 GiB"      # or a number of bytes
import { existsSync, readFileSync } from 'node:fs';

const UNITS = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

export function parseSize(value) {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.floor(value);
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(String(value));
  if (!m) throw new Error(`cannot parse size "${value}": use bytes or a number with B, KiB, MiB, GiB, TiB, KB, MB, GB or TB`);
  return Math.floor(Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]);
}

// A deliberately small TOML reader: tables, arrays of tables, and key = "string" | number | bool.
// Values it cannot read (inline tables, arrays) are kept as raw text.
export function parseTomlLite(text) {
  const root = {};
  let cur = root;
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.replace(/^\s+|\s+$/g, '');
    if (line === '' || line.startsWith('#')) continue;
    let m;
    if ((m = /^\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]$/.exec(line))) {
      const path = m[1].split('.');
      const parent = walk(root, path.slice(0, -1));
      const key = path[path.length - 1];
      if (!Array.isArray(parent[key])) parent[key] = [];
      cur = {};
      parent[key].push(cur);
    } else if ((m = /^\[\s*([A-Za-z0-9_.-]+)\s*\]$/.exec(line))) {
      cur = walk(root, m[1].split('.'));
    } else if ((m = /^([A-Za-z0-9_-]+|"[^"]*")\s*=\s*(.*)$/.exec(line))) {
      const key = m[1].replace(/^"|"$/g, '');
      cur[key] = tomlValue(m[2].replace(/\s+#.*$/, ''));
    } else {
      throw new Error(`cannot read config line ${n + 1}: ${raw}`);
    }
  }
  return root;
}

function walk(obj, path) {
  let o = obj;
  for (const p of path) {
    if (Array.isArray(o[p])) o = o[p][o[p].length - 1];
    else o = o[p] ??= {};
  }
  return o;
}

function tomlValue(v) {
  if (/^"(.*)"$/.test(v)) return JSON.parse(v);
  if (/^'(.*)'$/.test(v)) return v.slice(1, -1);
  if (/^[+-]?\d[\d_]*$/.test(v)) return Number(v.replace(/_/g, ''));
  if (v === 'true' || v === 'false') return v === 'true';
  return v;
}

/** Reads the config like bib: --config FILE, else /config.toml, else /config.json, else none. */
export function readBuildConfig(file) {
  let path = file;
  if (!path) {
    path = ['/config.toml', '/config.json'].find((p) => existsSync(p));
    if (!path) return { path: null, rootMinsize: null, ignored: [] };
  }
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read config: open ${path}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
  }
  const cfg = path.endsWith('.json') ? JSON.parse(text) : parseTomlLite(text);
  const custom = cfg.customizations ?? {};
  const fss = Array.isArray(custom.filesystem) ? custom.filesystem : [];
  const root = fss.find((f) => f.mountpoint === '/');
  return {
    path,
    rootMinsize: root?.minsize !== undefined ? parseSize(root.minsize) : null,
    ignored: Object.keys(custom).filter((k) => k !== 'filesystem'),
  };
}
