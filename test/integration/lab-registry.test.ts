// The lab's registry (scripts/lab.d/services/registry.sh): Debian's docker-registry with TLS from
// the lab CA and htpasswd auth, seeded with a four-arch list of the lab base. Asked through real
// clients: Node's TLS, skopeo on the coordinator, podman inside each worker host (which trusts the
// CA through its own /etc/containers/certs.d).

import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect, type PeerCertificate } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureLab, LAB_DIR, LAB_SCRIPT } from '../support/lab.ts';
import { sh, type Result } from '../support/run.ts';
import {
  LAB_ARCHES,
  LAB_REGISTRY_USER as USER,
  labRegistry,
  labRegistryPassword,
  OCI_ARCH,
  pushNewList,
  registryRequest,
  tagDigest,
  type LabRegistry,
} from '../support/registry.ts';

const STATE = join(LAB_DIR, 'registry');
const RUN_ID = randomBytes(4).toString('hex');
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

interface IndexEntry {
  mediaType: string;
  digest: string;
  platform: { architecture: string; os: string };
}
interface Index {
  mediaType: string;
  manifests: IndexEntry[];
}

let reg: LabRegistry;
let ca: Buffer;
let password: string;
let tmp: string;
/** An auth file with no credentials: skopeo must not fall back to the lab's or the user's. */
let noAuth: string;

const repoOf = (image: string) => image.slice(0, image.lastIndexOf(':'));

function skopeo(args: string[], authFile = reg.authFile): Promise<Result> {
  return sh('skopeo', [args[0]!, '--authfile', authFile, '--cert-dir', reg.certDir, ...args.slice(1)], { timeoutMs: 60_000 });
}

async function rawIndex(ref: string): Promise<Index> {
  const r = await skopeo(['inspect', '--raw', `docker://${ref}`]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Index;
}

/** The digest the registry names for a tag of this registry. */
const digestOf = (repoTag: string) => tagDigest(reg, repoTag);

function peerCertificate(): Promise<PeerCertificate> {
  const [host, port] = reg.host.split(':');
  return new Promise((resolve, reject) => {
    const s = connect({ host, port: Number(port), ca }, () => {
      resolve(s.getPeerCertificate());
      s.end();
    });
    s.on('error', reject);
  });
}

beforeAll(async () => {
  await ensureLab();
  reg = await labRegistry();
  ca = await readFile(reg.ca);
  password = await labRegistryPassword();
  tmp = await mkdtemp(join(tmpdir(), 'farm-it-registry-'));
  noAuth = join(tmp, 'no-auth.json');
  await writeFile(noAuth, '{"auths":{}}\n', { mode: 0o600 });
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('the registry service', () => {
  it('is told to the coordinator by scripts/lab env: address, CA, cert dir, auth file, seeded image', () => {
    expect(reg.host).toBe('10.231.0.30:5000');
    expect(reg.ca).toBe(join(STATE, 'tls', 'ca.crt'));
    expect(reg.certDir).toBe(join(STATE, 'certs.d', reg.host));
    expect(reg.authFile).toBe(join(STATE, 'auth.json'));
    expect(reg.image).toBe(`${reg.host}/farm-lab/base:latest`);
  });

  it("runs the package's docker-registry with the lab's config, and keeps keys and secrets 0600", async () => {
    const pid = (await readFile(join(STATE, 'registry.pid'), 'utf8')).trim();
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    expect(argv).toEqual(['/usr/bin/docker-registry', 'serve', join(STATE, 'config.yml')]);
    for (const f of ['tls/ca.key', 'tls/registry.key', 'secrets/password', 'htpasswd', 'auth.json', 'config.yml']) {
      expect((await stat(join(STATE, f))).mode & 0o777, f).toBe(0o600);
    }
    // htpasswd holds a bcrypt hash, never the password; auth.json the lab user's login.
    const htpasswd = await readFile(join(STATE, 'htpasswd'), 'utf8');
    expect(htpasswd).toMatch(/^farm-lab:\$2y\$\d\d\$[./A-Za-z0-9]{53}\n$/);
    expect(htpasswd).not.toContain(password);
    expect(password).toMatch(/^[0-9a-f]{48}$/);
    const auth = JSON.parse(await readFile(reg.authFile, 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(Buffer.from(auth.auths[reg.host]!.auth, 'base64').toString()).toBe(`${USER}:${password}`);
    expect(await readFile(join(STATE, 'config.yml'), 'utf8')).not.toContain(password);
  });

  it('serves TLS with a certificate the lab CA signed for its address, and nothing a client must not trust', async () => {
    const cert = await peerCertificate();
    expect(cert.subjectaltname).toBe('IP Address:10.231.0.30');
    expect(cert.issuer.CN).toBe('farm lab registry CA');
    // Without the lab CA, Node's own trust store refuses it.
    await expect(registryRequest(reg, '/v2/')).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  });

  it("refuses no credentials, a wrong password and an unknown user with the registry's 401, and takes the lab user", async () => {
    for (const creds of [{}, { user: USER, password: `${password}x` }, { user: 'someone', password }]) {
      const r = await registryRequest(reg, '/v2/', { ca, ...creds });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Basic realm="farm-lab-registry"');
      expect(JSON.parse(r.body).errors[0].code).toBe('UNAUTHORIZED');
    }
    const ok = await registryRequest(reg, '/v2/', { ca, user: USER, password });
    expect(ok.status).toBe(200);
    // skopeo without credentials gets the registry's answer.
    const anon = await skopeo(['inspect', '--raw', `docker://${reg.image}`], noAuth);
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toMatch(/authentication required/);
  });
});

describe('the seeded list', () => {
  it('is an image index of the four lab arches, each config reporting its arch and carrying its marker label', async () => {
    const index = await rawIndex(reg.image);
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.manifests.map((m) => m.platform).sort((a, b) => a.architecture.localeCompare(b.architecture))).toEqual(
      ['amd64', 'arm64', 'ppc64le', 's390x'].map((architecture) => ({ architecture, os: 'linux' })),
    );
    for (const arch of LAB_ARCHES) {
      const entry = index.manifests.find((m) => m.platform.architecture === OCI_ARCH[arch])!;
      const r = await skopeo(['inspect', '--raw', '--config', `docker://${repoOf(reg.image)}@${entry.digest}`]);
      expect(r.code, r.stderr).toBe(0);
      const config = JSON.parse(r.stdout) as { architecture: string; os: string; config: { Labels: Record<string, string> } };
      expect(config.architecture, arch).toBe(OCI_ARCH[arch]);
      expect(config.os).toBe('linux');
      expect(config.config.Labels).toMatchObject({ 'farm.lab.arch': arch, 'farm.lab.list': 'seed' });
    }
  });

  it('is seeded once: another `scripts/lab up` finds the same digest and pushes nothing', async () => {
    const before = await digestOf('farm-lab/base:latest');
    expect(before).toMatch(/^sha256:[0-9a-f]{64}$/);
    const start = Date.now();
    const r = await sh(LAB_SCRIPT, ['up', '--only', 'registry']);
    const seconds = (Date.now() - start) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`already holds the seed list (${before})`);
    expect(r.stderr).not.toContain('seeded ');
    expect(await digestOf('farm-lab/base:latest')).toBe(before);
    expect(seconds).toBeLessThan(20);
  });

  it('moves a tag to a new list with one call, and can leave arches out', async () => {
    const seed = await digestOf('farm-lab/base:latest');
    const tag = `farm-lab/base:test-${RUN_ID}`;
    const first = await pushNewList(tag, { id: `a-${RUN_ID}` });
    expect(await digestOf(tag)).toBe(first);
    const second = await pushNewList(`${reg.host}/${tag}`, { id: `b-${RUN_ID}` });
    expect(second).not.toBe(first);
    expect(await digestOf(tag)).toBe(second);
    expect(await digestOf('farm-lab/base:latest')).toBe(seed);
    const moved = await rawIndex(`${reg.host}/${tag}`);
    expect(moved.manifests).toHaveLength(4);

    const partial = `farm-lab/base:partial-${RUN_ID}`;
    await pushNewList(partial, { arches: ['x86_64', 's390x'] });
    expect((await rawIndex(`${reg.host}/${partial}`)).manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 's390x']);
  });

  it('refuses a bad reference or arch for a new list, naming the fix', async () => {
    const bad = await sh(LAB_SCRIPT, ['registry', 'push-new-list', 'Farm-Lab/base']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("push-new-list needs REPO:TAG (e.g. farm-lab/base:moved), not 'Farm-Lab/base'");
    const arch = await sh(LAB_SCRIPT, ['registry', 'push-new-list', `farm-lab/base:x-${RUN_ID}`, '--arches', 'x86_64,riscv64']);
    expect(arch.code).toBe(1);
    expect(arch.stderr).toContain("unknown arch 'riscv64'");
    expect(await digestOf(`farm-lab/base:x-${RUN_ID}`)).toBeUndefined();
  });
});

describe('the worker hosts', () => {
  it.each(LAB_ARCHES)("lab-%s pulls its arch's image by digest through its own CA trust", async (arch) => {
    const host = `lab-${arch}`;
    const id = `pull-${arch}-${RUN_ID}`;
    const tag = `${reg.host}/farm-lab/base:${id}`;
    await pushNewList(tag, { id });
    const entry = (await rawIndex(tag)).manifests.find((m) => m.platform.architecture === OCI_ARCH[arch])!;
    const ref = `${repoOf(tag)}@${entry.digest}`;
    const exec = (argv: string[]) => sh(LAB_SCRIPT, ['exec', host, '--', ...argv]);
    try {
      const pull = await exec(['podman', 'pull', '--quiet', '--authfile', reg.authFile, ref]);
      expect(pull.code, pull.stderr).toBe(0);
      const inspect = await exec(['podman', 'image', 'inspect', '--format', '{{.Architecture}} {{.Os}}', ref]);
      expect(inspect.stdout.trim()).toBe(`${OCI_ARCH[arch]} linux`);
      // Read from the image's mounted tree: its binaries are of its own arch, which this host's
      // CPU may not run.
      const markers = await exec(['sh', '-c', 'm=$(podman image mount "$1") && cat "$m/usr/share/farm/arch" "$m/usr/share/farm/list"; rc=$?; podman image unmount "$1" >/dev/null; exit $rc', 'sh', ref]);
      expect(markers.code, markers.stderr).toBe(0);
      expect(markers.stdout).toBe(`${arch}\n${id}\n`);
    } finally {
      await exec(['podman', 'rmi', '--force', ref]);
    }
  });

  it('refuse the registry without the lab CA: with an empty cert dir the pull fails on its certificate', async () => {
    const r = await sh(LAB_SCRIPT, [
      'exec', 'lab-aarch64', '--', 'sh', '-c',
      'd=$(mktemp -d) && podman pull --quiet --cert-dir "$d" --authfile "$1" "$2"; rc=$?; rmdir "$d"; exit $rc',
      'sh', reg.authFile, reg.image,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/x509: certificate signed by unknown authority/);
  });
});

describe('the password', () => {
  it('appears in no lab log and in no process argument', async () => {
    const secrets = [password, Buffer.from(`${USER}:${password}`).toString('base64')];
    const logs: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) {
          if (!['storage', 'data', 'pool', 'images', 'var-lib-farm'].includes(e.name)) await walk(p);
        } else if (e.isFile() && /\.(log|stderr)(\.\d+)?$/.test(e.name)) {
          logs.push(p);
        }
      }
    };
    await walk(LAB_DIR);
    expect(logs).toContain(join(STATE, 'registry.log'));
    for (const f of logs) {
      const text = await readFile(f, 'latin1');
      for (const s of secrets) expect(text.includes(s), `${f} holds the registry password`).toBe(false);
    }
    // The log does record the lab user's requests (so it was looked at where the password is used).
    expect(await readFile(join(STATE, 'registry.log'), 'utf8')).toContain(`auth.user.name=${USER}`);
    for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
      const argv = await readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '');
      for (const s of secrets) expect(argv.includes(s), `process ${pid} has the password in its arguments`).toBe(false);
    }
  });
});
