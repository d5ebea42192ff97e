// publish_image on the lab: the real CLI builds the lab Containerfile, each worker pushes its
// arch's image to the lab registry (TLS from the lab CA, htpasswd credentials from the auth file
// in X-Registry-Auth), and the coordinator pushes a manifest list of them, which skopeo reads back
// with every built arch and its platform. A dead worker leaves the list out unless partial: true.
// The registry password appears in no log, record or output.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { farm, type FarmRun } from '../support/cli.ts';
import { ensureLab, labEnv, labExec, labInventoryVariant, LAB_DIR } from '../support/lab.ts';
import { LAB_REGISTRY_USER, labRegistry, labRegistryPassword, type LabRegistry } from '../support/registry.ts';
import type { Manifest } from '../../src/records/manifest.ts';
import type { BuildState } from '../../src/records/state.ts';

const exec = promisify(execFile);
const RUN_ID = randomBytes(4).toString('hex');
const PLATFORM = { x86_64: { architecture: 'amd64', os: 'linux' }, aarch64: { architecture: 'arm64', os: 'linux', variant: 'v8' }, s390x: { architecture: 's390x', os: 'linux' } } as const;

let reg: LabRegistry;
let env: NodeJS.ProcessEnv;
let password: string;
const dirs: string[] = [];
const outputs: string[] = [];

async function variant(publish: Record<string, unknown>, change: (doc: Record<string, any>) => void = () => {}) {
  const v = await labInventoryVariant((doc) => {
    doc.source.publish = publish;
    doc.arches = { x86_64: { types: ['qcow2'] }, aarch64: { types: ['qcow2'] }, s390x: { types: ['qcow2'] } };
    change(doc);
  });
  dirs.push(v.dir);
  return v;
}

async function run(args: string[]): Promise<FarmRun> {
  const r = await farm(args, { env, timeoutMs: 900_000 });
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** skopeo's raw manifest of REF (as another tool reads it), or its error. */
async function inspectRaw(ref: string): Promise<{ ok: true; json: any; digest: string } | { ok: false; error: string }> {
  const args = ['inspect', '--raw', '--cert-dir', reg.certDir, '--creds', `${LAB_REGISTRY_USER}:${password}`, `docker://${ref}`];
  try {
    const { stdout } = await exec('skopeo', args, { timeout: 60_000 });
    const { createHash } = await import('node:crypto');
    return { ok: true, json: JSON.parse(stdout), digest: `sha256:${createHash('sha256').update(stdout).digest('hex')}` };
  } catch (err) {
    return { ok: false, error: String((err as { stderr?: string }).stderr ?? err) };
  }
}

const buildIdOf = (r: FarmRun) => /build (\d{8}t\d{6}z\S*):/.exec(r.stdout + r.stderr)![1]!;
const stateOf = async (dir: string, id: string) => JSON.parse(await readFile(join(dir, 'builds', id, 'state.json'), 'utf8')) as BuildState;

beforeAll(async () => {
  await ensureLab();
  reg = await labRegistry();
  env = { ...(await labEnv()) };
  password = await labRegistryPassword();
}, 900_000);

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true }).catch(() => undefined);
});

describe('publish_image on the lab', () => {
  const repo = () => `${reg.host}/farm-lab/published-${RUN_ID}`;

  it('pushes each arch from its worker and a list of all of them, tagged with the build id and latest', async () => {
    const v = await variant({ image: repo(), latest: true });
    const r = await run(['build', '--arch', 'x86_64,aarch64', '--no-upload', '-i', v.file]);
    expect(r.code, r.stderr).toBe(0);
    const id = buildIdOf(r);
    const state = await stateOf(v.dir, id);
    expect(state.status).toBe('succeeded');
    const pub = state.published!;
    expect(pub.repository).toBe(repo());
    expect(pub.list).toMatchObject({ ref: `${repo()}:${id}`, tags: [id, 'latest'] });
    expect(r.stderr + r.stdout).toContain(`published manifest list ${repo()}:${id}@${pub.list!.digest}`);

    const list = await inspectRaw(`${repo()}:${id}`);
    expect(list.ok, list.ok ? '' : list.error).toBe(true);
    if (!list.ok) return;
    expect(list.digest).toBe(pub.list!.digest);
    expect(list.json.mediaType).toBe(pub.list!.mediaType);
    const childType = list.json.mediaType.includes('oci') ? 'application/vnd.oci.image.manifest.v1+json' : 'application/vnd.docker.distribution.manifest.v2+json';
    expect(list.json.manifests.map((m: any) => m.platform)).toEqual([PLATFORM.x86_64, PLATFORM.aarch64]);
    for (const [i, arch] of (['x86_64', 'aarch64'] as const).entries()) {
      const m = list.json.manifests[i];
      expect(m.mediaType, arch).toBe(childType);
      expect(m.digest, arch).toBe(pub.arches[arch]!.digest);
      // The child is the arch's own image: its config says so, and its per-arch tag names it.
      const child = await inspectRaw(`${repo()}@${m.digest}`);
      expect(child.ok && child.json.mediaType, arch).toBe(childType);
      const { stdout } = await exec('skopeo', ['inspect', '--config', '--cert-dir', reg.certDir, '--creds', `${LAB_REGISTRY_USER}:${password}`, `docker://${repo()}:${id}-${arch}`], { timeout: 60_000 });
      expect(JSON.parse(stdout).architecture, arch).toBe(PLATFORM[arch].architecture);
    }
    // latest names the same list.
    const latest = await inspectRaw(`${repo()}:latest`);
    expect(latest.ok && latest.digest).toBe(pub.list!.digest);
    const manifest = JSON.parse(await readFile(join(v.dir, 'builds', id, 'manifest.json'), 'utf8')) as Manifest;
    const x86 = manifest.builds.find((b) => b.arch === 'x86_64')!;
    expect(x86.custom_data).toMatchObject({ published_image: `${repo()}@${pub.arches.x86_64!.digest}`, published_list: `${repo()}:${id}@${pub.list!.digest}` });

    // A second build moves latest to its own list.
    const r2 = await run(['build', '--arch', 'x86_64', '--no-upload', '-i', v.file]);
    expect(r2.code, r2.stderr).toBe(0);
    const second = (await stateOf(v.dir, buildIdOf(r2))).published!.list!;
    expect(second.digest).not.toBe(pub.list!.digest);
    const moved = await inspectRaw(`${repo()}:latest`);
    expect(moved.ok && moved.digest).toBe(second.digest);
    expect(moved.ok && moved.json.manifests.map((m: any) => m.platform)).toEqual([PLATFORM.x86_64]);
  }, 900_000);

  it('a dead worker leaves the list out, unless partial: true', async () => {
    const dead = (doc: Record<string, any>) => {
      doc.workers.find((w: { arch: string }) => w.arch === 's390x').port = 2222; // nothing listens there
    };
    const strict = await variant({ image: repo() }, dead);
    const r = await run(['build', '--arch', 'x86_64,s390x', '--no-upload', '-i', strict.file]);
    expect(r.code).toBe(1);
    const id = buildIdOf(r);
    const state = await stateOf(strict.dir, id);
    expect(state.arches.x86_64!.step).toBe('fetched');
    expect(state.published!.arches.x86_64).toBeDefined();
    expect(state.published!.list).toBeUndefined();
    expect(state.published!.listError).toContain('s390x not published');
    expect(r.stderr).toMatch(/publish_image: s390x not published: no manifest list/);
    const none = await inspectRaw(`${repo()}:${id}`);
    expect(none.ok).toBe(false);
    expect(!none.ok && none.error).toMatch(/manifest unknown|not found/i);

    const partial = await variant({ image: repo(), partial: true }, dead);
    const p = await run(['build', '--arch', 'x86_64,s390x', '--no-upload', '-i', partial.file]);
    expect(p.code).toBe(1);
    const pid = buildIdOf(p);
    const pstate = await stateOf(partial.dir, pid);
    expect(pstate.published!.list).toBeDefined();
    const list = await inspectRaw(`${repo()}:${pid}`);
    expect(list.ok && list.json.manifests.map((m: any) => m.platform)).toEqual([PLATFORM.x86_64]);
    expect(p.stderr + p.stdout).toContain('partial: s390x left out');
  }, 900_000);

  it('refuses wrong push credentials at the build start, with the registry\'s answer, building nothing', async () => {
    const v = await variant({ image: repo() });
    const wrongAuth = join(v.dir, 'wrong-auth.json');
    await writeFile(wrongAuth, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${LAB_REGISTRY_USER}:not-the-password`).toString('base64') } } }), { mode: 0o600 });
    const r = await farm(['build', '--arch', 'x86_64', '--no-upload', '-i', v.file], { env: { ...env, REGISTRY_AUTH_FILE: wrongAuth }, timeoutMs: 300_000 });
    outputs.push(r.stdout, r.stderr);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/source\.publish\.image .*the registry answered 401/);
    expect(await readdir(join(v.dir, 'builds')).catch(() => [])).toEqual([]);
  }, 300_000);

  it('leaves the registry password in no log, record or output of the builds', async () => {
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
    expect(files.some((f) => f.endsWith('build.log'))).toBe(true);
    for (const f of files) {
      const text = await readFile(f, 'latin1');
      for (const s of secrets) expect(text.includes(s), `${f} holds the registry password`).toBe(false);
    }
    for (const o of outputs) for (const s of secrets) expect(o.includes(s), 'a farm output holds the registry password').toBe(false);
    for (const arch of ['x86_64', 'aarch64'] as const) {
      // No login kept on the worker (the pattern comes from the lab's secret file, never argv),
      // and no tag of the published repository left in its storage (the push names a destination).
      const found = await labExec(`lab-${arch}`, ['sh', '-c', 'grep -rlF -f "$1" /run/containers /root/.config/containers /root/.docker /var/lib/farm 2>/dev/null; true', 'sh', join(LAB_DIR, 'registry', 'secrets', 'password')]);
      expect(found.trim(), `lab-${arch}`).toBe('');
      const images = await labExec(`lab-${arch}`, ['podman', 'images', '--format', '{{.Repository}}:{{.Tag}}']);
      expect(images, `lab-${arch}`).not.toContain(`published-${RUN_ID}`);
    }
  });
});
