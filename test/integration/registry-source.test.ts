// An image source on the lab: the real CLI reads the lab registry's four-arch list (TLS from the
// lab CA, htpasswd auth from the containers auth file), every worker pulls its own arch by digest
// and the stand-in bib converts it. Also: --if-changed and `farm serve` follow the tag; the
// registry's refusals (wrong credentials, a missing tag, an arch the list lacks) stop a build
// before any worker is asked; the password appears in no log or record.

import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { farm, type FarmRun } from '../support/cli.ts';
import { readFromDisk } from '../support/disk.ts';
import { ensureLab, labEnv, labExec, labInventoryVariant, LAB_DIR } from '../support/lab.ts';
import { LAB_ARCHES, LAB_REGISTRY_USER, labRegistry, labRegistryPassword, pushNewList, tagDigest, type LabRegistry } from '../support/registry.ts';
import { killServes, startServe, type ServeProcess } from '../support/serve.ts';
import type { Manifest } from '../../src/records/manifest.ts';
import type { BuildState } from '../../src/records/state.ts';

const RUN_ID = randomBytes(4).toString('hex');
const QCOW2_ALL = Object.fromEntries(LAB_ARCHES.map((a) => [a, { types: ['qcow2'] }]));

let reg: LabRegistry;
let env: NodeJS.ProcessEnv;
let password: string;
/** Every directory a test wrote builds into, and every CLI/serve output: searched for the password at the end. */
const dirs: string[] = [];
const outputs: string[] = [];

async function variant(image: string, change: (doc: Record<string, any>) => void = () => {}) {
  const v = await labInventoryVariant((doc) => {
    delete doc.source.containerfile;
    delete doc.source.context;
    doc.source.image = image;
    doc.arches = QCOW2_ALL;
    change(doc);
  });
  dirs.push(v.dir);
  return v;
}

async function run(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<FarmRun> {
  const r = await farm(args, { env: { ...env, ...extra }, timeoutMs: 900_000 });
  outputs.push(r.stdout, r.stderr);
  return r;
}

const buildIds = async (dir: string) => (await readdir(join(dir, 'builds')).catch(() => [] as string[])).filter((n) => /^\d{8}t\d{6}z/.test(n)).sort();
const stateOf = async (dir: string, id: string) => JSON.parse(await readFile(join(dir, 'builds', id, 'state.json'), 'utf8')) as BuildState;

beforeAll(async () => {
  await ensureLab();
  reg = await labRegistry();
  env = { ...(await labEnv()) };
  password = await labRegistryPassword();
}, 900_000);

afterAll(async () => {
  killServes();
  for (const d of dirs) await rm(d, { recursive: true, force: true }).catch(() => undefined);
});

describe('an image source on the lab', () => {
  it('builds all four arches from the list, each disk from its own arch, recording the digests; workers keep nothing', async () => {
    const id = `all-${RUN_ID}`;
    const tag = `farm-lab/base:rs-${id}`;
    const listDigest = await pushNewList(tag, { id });
    const v = await variant(`${reg.host}/${tag}`);
    const r = await run(['build', '--arch', 'all', '--no-upload', '-i', v.file]);
    expect(r.code, r.stderr).toBe(0);
    const [buildId] = await buildIds(v.dir);
    const state = await stateOf(v.dir, buildId!);
    expect(state.status).toBe('succeeded');
    expect(state.source).toMatchObject({ image: `${reg.host}/${tag}`, digest: listDigest });
    const manifest = JSON.parse(await readFile(join(v.dir, 'builds', buildId!, 'manifest.json'), 'utf8')) as Manifest;
    for (const arch of LAB_ARCHES) {
      const archDigest = state.source!.arches[arch]!;
      expect(archDigest, arch).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(r.stderr).toContain(`pulling ${reg.host}/farm-lab/base@${archDigest}`);
      const disk = join(v.dir, 'builds', buildId!, arch, 'qcow2', 'disk.qcow2');
      expect((await readFromDisk(disk, 'qcow2', '/usr/share/farm/arch')).trim(), arch).toBe(arch);
      expect((await readFromDisk(disk, 'qcow2', '/usr/share/farm/list')).trim(), arch).toBe(id);
      expect(manifest.builds.find((b) => b.arch === arch)!.custom_data).toMatchObject({ source_image: `${reg.host}/${tag}`, source_list_digest: listDigest, source_digest: archDigest });
      // The pulled image and its build tag are gone from the worker.
      const images = await labExec(`lab-${arch}`, ['podman', 'images', '--all', '--digests', '--format', '{{.Repository}}:{{.Tag}} {{.Digest}}']);
      expect(images, arch).not.toContain(archDigest);
      expect(images, arch).not.toContain(buildId);
    }
  }, 900_000);

  it('--if-changed builds nothing while the tag names the same list, and builds once it moves', async () => {
    const tag = `farm-lab/base:rs-ifc-${RUN_ID}`;
    await pushNewList(tag, { id: `ifc1-${RUN_ID}` });
    const v = await variant(`${reg.host}/${tag}`, (doc) => (doc.arches = { s390x: { types: ['qcow2'] } }));
    const args = ['build', '--if-changed', '--arch', 's390x', '--no-upload', '-i', v.file];
    const first = await run(args);
    expect(first.code, first.stderr).toBe(0);
    expect(await buildIds(v.dir)).toHaveLength(1);
    const again = await run(args);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/up to date: build \S+ has key sha256:/);
    expect(await buildIds(v.dir)).toHaveLength(1);
    await pushNewList(tag, { id: `ifc2-${RUN_ID}` });
    const moved = await run(args);
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stderr).toMatch(/key changed since build \S+ \(changed: source\.digest, source\.s390x\.digest\)/);
    expect(await buildIds(v.dir)).toHaveLength(2);
  }, 900_000);

  it('under farm serve, a moved tag builds exactly once and an unmoved one never', async () => {
    const tag = `farm-lab/base:rs-serve-${RUN_ID}`;
    await pushNewList(tag, { id: `serve1-${RUN_ID}` });
    const pollS = 2;
    const v = await variant(`${reg.host}/${tag}`, (doc) => {
      doc.arches = { s390x: { types: ['qcow2'] } };
      doc.service = { source: { poll_interval: `${pollS}s` }, debounce: '100ms', arches: ['s390x'] };
    });
    let service: ServeProcess | undefined;
    try {
      service = await startServe(v.file, env);
      const succeeded = async (n: number) =>
        vi.waitFor(
          async () => {
            const s = await service!.snapshot();
            expect(s.running).toBeNull();
            expect(s.builds.filter((b) => b.status === 'succeeded')).toHaveLength(n);
            return s;
          },
          { timeout: 600_000, interval: 1000 },
        );
      // The first poll finds no build yet: one build.
      await succeeded(1);
      // Several polls of an unmoved tag: no run at all.
      const runsBefore = (await service.snapshot()).runs.length;
      await new Promise((r) => setTimeout(r, pollS * 5 * 1000));
      const idle = await service.snapshot();
      expect(idle.runs).toHaveLength(runsBefore);
      expect(idle.pending).toBeNull();
      expect(idle.running).toBeNull();

      // The tag moves: one run, one build, from the registry trigger.
      const newDigest = await pushNewList(tag, { id: `serve2-${RUN_ID}` });
      const movedAt = Date.now();
      let startedAt = 0;
      await vi.waitFor(
        async () => {
          const s = await service!.snapshot();
          const started = s.runs.concat(s.running ? [s.running] : []).find((r) => r.reasons.some((x) => x.kind === 'registry' && x.detail.includes(newDigest.slice(0, 19))));
          expect(started?.started_at).toBeDefined();
          startedAt = Date.parse(started!.started_at!);
        },
        { timeout: 120_000, interval: 100 },
      );
      const snap = await succeeded(2);
      const seconds = (startedAt - movedAt) / 1000;
      // Measured for the report: the tag move to the run's start, at this poll interval.
      console.log(`registry trigger: tag move to build start ${seconds.toFixed(1)} s at poll_interval ${pollS}s`);
      expect(seconds).toBeLessThan(pollS * 2 + 5);
      const newest = snap.builds[0]!;
      expect(newest.trigger).toBe('registry');
      const state = await stateOf(v.dir, newest.build_id);
      expect(state.source!.digest).toBe(newDigest);
      await new Promise((r) => setTimeout(r, pollS * 4 * 1000));
      const after = await service.snapshot();
      expect(after.builds).toHaveLength(2);
      expect(after.runs.length).toBe(runsBefore + 1);
    } finally {
      const stopped = await service?.stop('SIGTERM');
      if (service) outputs.push(service.log());
      expect(stopped?.code ?? 0).toBe(0);
    }
  }, 900_000);

  it("refuses wrong credentials and a missing tag at `workers check` and at the build's start, with the registry's answer", async () => {
    const v = await variant(`${reg.host}/farm-lab/base:latest`, (doc) => (doc.arches = { s390x: { types: ['qcow2'] } }));
    const wrongAuth = join(v.dir, 'wrong-auth.json');
    await writeFile(wrongAuth, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${LAB_REGISTRY_USER}:not-${password.slice(0, 6)}`).toString('base64') } } }), { mode: 0o600 });
    const wrong = { REGISTRY_AUTH_FILE: wrongAuth };
    const check = await run(['workers', 'check', '--arch', 's390x', '--json', '-i', v.file], wrong);
    expect(check.code).toBe(1);
    const [report] = JSON.parse(check.stdout) as Array<{ healthy: boolean; problems: string[] }>;
    expect(report!.healthy).toBe(false);
    expect(report!.problems.join('\n')).toContain('the registry answered 401 UNAUTHORIZED: authentication required');
    const build = await run(['build', '--arch', 's390x', '--no-upload', '-i', v.file], wrong);
    expect(build.code).toBe(1);
    expect(build.stderr).toContain('the registry answered 401 UNAUTHORIZED: authentication required');
    expect(build.stderr).toContain(`credentials for ${reg.host} in ${wrongAuth} were refused`);
    expect(build.stderr).not.toMatch(/healthy:|skipped:/);
    expect(await buildIds(v.dir)).toEqual([]);

    const missing = await variant(`${reg.host}/farm-lab/base:missing-${RUN_ID}`, (doc) => (doc.arches = { s390x: { types: ['qcow2'] } }));
    const check404 = await run(['workers', 'check', '--arch', 's390x', '-i', missing.file]);
    expect(check404.code).toBe(1);
    expect(check404.stdout).toContain('the registry answered 404 MANIFEST_UNKNOWN: manifest unknown');
    const build404 = await run(['build', '--arch', 's390x', '--no-upload', '-i', missing.file]);
    expect(build404.code).toBe(1);
    expect(build404.stderr).toContain('the registry answered 404 MANIFEST_UNKNOWN: manifest unknown');
    expect(await buildIds(missing.dir)).toEqual([]);
  }, 300_000);

  it('refuses an arch the list lacks before any worker starts, naming the arches it carries', async () => {
    const tag = `farm-lab/base:rs-two-${RUN_ID}`;
    await pushNewList(tag, { id: `two-${RUN_ID}`, arches: ['x86_64', 's390x'] });
    const v = await variant(`${reg.host}/${tag}`);
    const r = await run(['build', '--arch', 'all', '--no-upload', '-i', v.file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${reg.host}/${tag}`);
    expect(r.stderr).toContain('carries no image for aarch64, ppc64le: it carries x86_64, s390x');
    expect(r.stderr).not.toMatch(/healthy:|skipped:|pulling /);
    expect(await buildIds(v.dir)).toEqual([]);
    // The arches it carries build.
    const check = await run(['workers', 'check', '--json', '-i', v.file]);
    const reports = JSON.parse(check.stdout) as Array<{ arch: string; healthy: boolean; problems: string[]; sourceImage?: string }>;
    expect(reports.filter((w) => w.healthy).map((w) => w.arch).sort()).toEqual(['s390x', 'x86_64']);
    expect(reports.find((w) => w.arch === 'ppc64le')!.problems.join()).toContain('carries no image for ppc64le: it carries x86_64, s390x');
  }, 300_000);

  it('leaves the registry password in no log, record or output, and in no file on the workers', async () => {
    const secrets = [password, Buffer.from(`${LAB_REGISTRY_USER}:${password}`).toString('base64')];
    const files: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.isFile() && !/\.(qcow2|raw)$/.test(e.name)) files.push(p);
      }
    };
    for (const d of dirs) await walk(d);
    expect(files.some((f) => f.endsWith('state.json'))).toBe(true);
    expect(files.some((f) => f.endsWith('build.log'))).toBe(true);
    for (const f of files.filter((f) => !f.endsWith('wrong-auth.json'))) {
      const text = await readFile(f, 'latin1');
      for (const s of secrets) expect(text.includes(s), `${f} holds the registry password`).toBe(false);
    }
    for (const o of outputs) for (const s of secrets) expect(o.includes(s), 'a farm output holds the registry password').toBe(false);
    // Never written on a worker: podman keeps no login of the farm's pull.
    for (const arch of LAB_ARCHES) {
      // The pattern comes from the lab's secret file (never in argv).
      const found = await labExec(`lab-${arch}`, ['sh', '-c', 'grep -rlF -f "$1" /run/containers /root/.config/containers /root/.docker /var/lib/farm 2>/dev/null; true', 'sh', join(LAB_DIR, 'registry', 'secrets', 'password')]);
      expect(found.trim(), `lab-${arch}`).toBe('');
    }
  });
});
