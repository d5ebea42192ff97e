// The lab for integration tests: brought up once (idempotent `scripts/lab up`), then reused.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO } from './cli.ts';

const run = promisify(execFile);

// FARM_LAB_SCRIPT: the checkout whose scripts run the shared lab (its services know their own
// entry points), when tests run from another worktree.
export const LAB_SCRIPT = process.env.FARM_LAB_SCRIPT ?? join(REPO, 'scripts', 'lab');
export const LAB_INVENTORY = join(REPO, 'inventory', 'lab.yaml');
export const LAB_DIR = process.env.FARM_LAB_DIR ?? join(REPO, '.lab');

let up: Promise<void> | undefined;

export function ensureLab(): Promise<void> {
  up ??= run(LAB_SCRIPT, ['up'], { maxBuffer: 64 << 20, timeout: 900_000 }).then(() => undefined);
  return up;
}

/** Runs a command inside a lab host's namespaces. */
export async function labExec(host: string, argv: string[]): Promise<string> {
  const { stdout } = await run(LAB_SCRIPT, ['exec', host, '--', ...argv], { maxBuffer: 64 << 20 });
  return stdout;
}

type Doc = Record<string, any>;

/**
 * Writes a variant of the lab inventory into a temp dir with every path made absolute, so a test
 * can change it (builds_dir, a worker's port, known_hosts) without touching the repo's file.
 */
export async function labInventoryVariant(change: (doc: Doc) => void = () => {}, opts: { smoke?: boolean } = {}): Promise<{ file: string; dir: string; doc: Doc }> {
  const base = dirname(LAB_INVENTORY);
  const doc = parse(await readFile(LAB_INVENTORY, 'utf8')) as Doc;
  // Paths into the repo's .lab follow FARM_LAB_DIR, so a checkout can use a lab another made.
  const repoLab = join(REPO, '.lab');
  const abs = (p: string | undefined) => {
    if (p === undefined) return p;
    const full = isAbsolute(p) ? p : resolve(base, p);
    return full === repoLab || full.startsWith(repoLab + '/') ? LAB_DIR + full.slice(repoLab.length) : full;
  };
  doc.source.containerfile = abs(doc.source.containerfile);
  doc.source.context = abs(doc.source.context ?? '.');
  if (doc.builder?.config) doc.builder.config = abs(doc.builder.config);
  for (const w of doc.workers) {
    w.identity_file = abs(w.identity_file);
    w.known_hosts = abs(w.known_hosts);
  }
  for (const cfg of Object.values(doc.arches ?? {}) as Array<{ targets?: Array<{ hypervisors?: Doc[] }> }>) {
    for (const t of cfg.targets ?? []) {
      for (const h of t.hypervisors ?? []) {
        if (h.identity_file) h.identity_file = abs(h.identity_file);
        if (h.known_hosts) h.known_hosts = abs(h.known_hosts);
      }
    }
  }
  const dir = await mkdtemp(join(tmpdir(), 'farm-it-'));
  doc.settings = { ...(doc.settings ?? {}), builds_dir: join(dir, 'builds') };
  // The lab inventory boots every disk (smoke:); tests about other things build without it, so
  // the suite pays for the boots once (test/integration/smoke.test.ts), not in every build.
  if (!opts.smoke) doc.smoke = false;
  change(doc);
  const file = join(dir, 'inventory.yaml');
  await writeFile(file, stringify(doc));
  return { file, dir, doc };
}

/** The lab clouds' credentials, as `. "$(scripts/lab env)"` would export them. */
export async function labEnv(): Promise<Record<string, string>> {
  const { stdout } = await run(LAB_SCRIPT, ['env']);
  const text = await readFile(stdout.trim(), 'utf8');
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1').replace(/^"(.*)"$/, '$1');
  }
  return env;
}

/**
 * A Containerfile whose marker is unique to this test run, so a stale image cannot pass. It COPYs
 * only: the lab's base images are foreign-arch systems on most hosts, and a RUN would execute them.
 */
export async function markedSource(dir: string): Promise<{ containerfile: string; context: string; token: string }> {
  const token = `farm-test-${randomBytes(8).toString('hex')}`;
  const context = join(dir, 'src');
  await mkdir(context, { recursive: true });
  await writeFile(join(context, 'motd'), `welcome ${token}\n`);
  await writeFile(join(context, 'marker'), `${token}\n`);
  const containerfile = join(context, 'Containerfile');
  await writeFile(
    containerfile,
    ['FROM localhost/farm-lab/base:latest', 'COPY marker /usr/share/farm/marker', 'COPY motd /etc/motd', ''].join('\n'),
  );
  return { containerfile, context, token };
}

/** A lab inventory variant that builds `src`'s Containerfile and context. */
export function labInventoryFor(src: { containerfile: string; context: string }): Promise<{ file: string; dir: string; doc: Doc }> {
  return labInventoryVariant((doc) => {
    doc.source.containerfile = src.containerfile;
    doc.source.context = src.context;
  });
}

/** A lab inventory variant that builds a markedSource, with its token. */
export async function markedLabInventory(): Promise<{ file: string; dir: string; doc: Doc; token: string }> {
  const src = await markedSource((await labInventoryVariant()).dir);
  return { ...(await labInventoryFor(src)), token: src.token };
}
