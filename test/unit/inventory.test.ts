import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import {
  InventoryError,
  formatProblems,
  loadInventory,
  parseInventory,
  resolveInventoryPath,
  resolveTargetName,
  type InventoryProblem,
} from '../../src/inventory/load.ts';
import type { AwsTarget } from '../../uploaders/aws/schema.ts';
import type { IbmCloudTarget } from '../../uploaders/ibmcloud/schema.ts';
import type { LibvirtTarget } from '../../uploaders/libvirt/schema.ts';
import type { OpenStackTarget } from '../../uploaders/openstack/schema.ts';
import { KEY, VALID, only, problemsOf, removeCases, writeInventory, yml } from './inventory-support.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = join(ROOT, 'test/fixtures/inventory');
let tmp: string;
let home: string;
const savedHome = process.env.HOME;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'farm-inventory-test-'));
  home = join(tmp, 'home');
  await mkdir(home);
  process.env.HOME = home; // `~/` and the default known_hosts resolve here, not in the real home
});

afterAll(async () => {
  process.env.HOME = savedHome;
  await rm(tmp, { recursive: true, force: true });
  await removeCases();
});

// BASE is a valid inventory to break one thing in at a time (line numbers below refer to it).
const BASE = VALID;

describe('loading valid inventories', () => {
  it('fills every default and resolves paths against the inventory directory', async () => {
    const dir = join(FIXTURES, 'minimal');
    const loaded = await loadInventory(join(dir, 'farm.yaml'));
    expect(loaded.file).toBe(join(dir, 'farm.yaml'));
    expect(loaded.dir).toBe(dir);
    const inv = loaded.inventory;
    expect(inv.source).toEqual({ containerfile: join(dir, 'Containerfile'), context: dir, build_args: {} });
    expect(inv.builder).toEqual({
      image: 'quay.io/centos-bootc/bootc-image-builder:latest',
      pull: 'newer',
      rootfs: 'xfs',
      extra_args: [],
    });
    expect(inv.naming).toEqual({ name: 'farm', template: '{name}-{date}-{time}-{arch}' });
    expect(inv.settings).toEqual({ builds_dir: '/var/tmp/farm-minimal-builds', keep_remote: false, connect_timeout_s: 20, keepalive_s: 15, bulk_transfer: 'auto' });
    expect(inv.workers).toEqual([
      {
        name: 'builder',
        host: '10.231.0.11',
        port: 22,
        user: 'root',
        arch: 'x86_64',
        known_hosts: join(dir, 'known_hosts'),
        podman_socket: '/run/podman/podman.sock',
        storage: '/var/lib/containers/storage',
        output_dir: '/var/lib/farm/output',
        max_builds: 1,
        min_free_gib: { storage: 10, output: 10 },
      },
    ]);
    expect(inv.arches).toEqual({});
  });

  it('loads every section, resolves ../ paths, honours YAML merge keys and fills target defaults', async () => {
    const dir = join(FIXTURES, 'full/inventory');
    const { inventory: inv } = await loadInventory(join(dir, 'farm.yaml'));
    expect(inv.source.containerfile).toBe(join(FIXTURES, 'full/Containerfile'));
    expect(inv.source.context).toBe(join(FIXTURES, 'full'));
    expect(inv.source.build_args).toEqual({ FEDORA: '42' });
    expect(inv.builder).toMatchObject({ pull: 'missing', rootfs: 'btrfs', extra_args: ['--use-librepo=True'], config: join(dir, 'config.toml') });
    expect(inv.settings.builds_dir).toBe('/var/tmp/farm-fixture-builds');
    expect(inv.settings.keep_remote).toBe(true);

    const [x86, s390x] = inv.workers;
    expect(x86).toMatchObject({ name: 'builder-x86_64', port: 2222, known_hosts: join(FIXTURES, 'full/ssh/known_hosts') });
    // The merge key brought in port and known_hosts; the worker's own keys win.
    expect(s390x).toMatchObject({
      name: 'builder-s390x',
      host: '10.231.0.14',
      arch: 's390x',
      user: 'builder',
      port: 2222,
      known_hosts: join(FIXTURES, 'full/ssh/known_hosts'),
      host_key: KEY,
      max_builds: 2,
      min_free_gib: { storage: 50, output: 10 },
    });

    const x86Targets = inv.arches.x86_64!.targets;
    expect(inv.arches.x86_64!.types).toEqual(['ami', 'qcow2']);
    const aws = x86Targets[0] as AwsTarget;
    expect(aws).toEqual({
      kind: 'aws',
      region: 'us-east-1',
      method: 'ebs-direct',
      boot_mode: 'uefi-preferred',
      imds_v2: false,
      copy_regions: [],
      share_accounts: [],
      tags: {},
    });
    expect((x86Targets[1] as AwsTarget).share_accounts).toEqual(['123456789012']);
    const libvirt = x86Targets[2] as LibvirtTarget;
    expect(libvirt).toMatchObject({ pool: 'images', image_type: 'qcow2', convert_to_raw: true });
    expect(libvirt.hypervisors[0]!.known_hosts).toBe(join(FIXTURES, 'full/ssh/known_hosts'));

    const [ibm, openstack] = inv.arches.s390x!.targets as [IbmCloudTarget, OpenStackTarget];
    expect(ibm.regions).toEqual(['us-east', 'eu-de']);
    expect(ibm.cos).toEqual({ bucket: 'fixture-cos', region: 'us-east' });
    expect(openstack).toEqual({ kind: 'openstack', cloud: 'fixture', image_type: 'qcow2', visibility: 'private', properties: {} });
  });

  it('expands ~/ to HOME in every local path, workers and hypervisors included', async () => {
    await mkdir(join(home, '.ssh'), { recursive: true });
    await writeFile(join(home, '.ssh/id_farm'), 'key', { mode: 0o600 });
    await writeFile(join(home, '.ssh/hv_known_hosts'), 'hv ssh-ed25519 AAAA\n');
    await writeFile(join(home, 'Containerfile'), 'FROM scratch\n');
    await writeFile(join(home, 'bib.toml'), '');
    await mkdir(join(home, 'ctx'), { recursive: true });
    const file = await writeInventory(
      yml(`
        version: 1
        source: { containerfile: ~/Containerfile, context: ~/ctx }
        builder: { config: ~/bib.toml }
        settings: { builds_dir: ~/builds }
        workers:
          - { name: w, host: h, arch: x86_64, identity_file: ~/.ssh/id_farm, host_key: "${KEY}" }
        arches:
          x86_64:
            targets:
              - kind: libvirt
                hypervisors:
                  - { uri: "qemu+ssh://u@hv/system", arch: x86_64, identity_file: ~/.ssh/id_farm, known_hosts: ~/.ssh/hv_known_hosts }
      `),
    );
    const { inventory: inv } = await loadInventory(file);
    expect(inv.source).toMatchObject({ containerfile: join(home, 'Containerfile'), context: join(home, 'ctx') });
    expect(inv.builder.config).toBe(join(home, 'bib.toml'));
    expect(inv.settings.builds_dir).toBe(join(home, 'builds'));
    expect(inv.workers[0]!.identity_file).toBe(join(home, '.ssh/id_farm'));
    const hv = (inv.arches.x86_64!.targets[0] as LibvirtTarget).hypervisors[0]!;
    expect(hv).toMatchObject({ identity_file: join(home, '.ssh/id_farm'), known_hosts: join(home, '.ssh/hv_known_hosts') });
  });

  it('hands out independent objects: changing one load leaves the next untouched', async () => {
    const file = join(FIXTURES, 'minimal/farm.yaml');
    const a = await loadInventory(file);
    a.inventory.builder.extra_args.push('--changed');
    a.inventory.workers[0]!.min_free_gib.storage = 99;
    const b = await loadInventory(file);
    expect(b.inventory.builder.extra_args).toEqual([]);
    expect(b.inventory.workers[0]!.min_free_gib.storage).toBe(10);
  });

  it('loads the production example inventory/farm.yaml (its files live on the production host)', async () => {
    const { inventory: inv, dir } = await loadInventory(join(ROOT, 'inventory/farm.yaml'), { checkFiles: false });
    expect(dir).toBe(join(ROOT, 'inventory'));
    expect(inv.source.containerfile).toBe(join(ROOT, 'Containerfile'));
    expect(inv.builder).toMatchObject({
      image: 'quay.io/centos-bootc/bootc-image-builder:latest',
      rootfs: 'xfs',
      extra_args: ['--use-librepo=True'],
    });
    expect(inv.naming.name).toBe('copr-builder');
    expect(inv.workers.map((w) => [w.name, w.arch])).toEqual([
      ['copr-builder-x86_64', 'x86_64'],
      ['copr-builder-aarch64', 'aarch64'],
      ['copr-builder-ppc64le', 'ppc64le'],
      ['copr-builder-s390x', 's390x'],
    ]);
    expect(inv.workers.every((w) => w.identity_file === join(home, '.ssh/id_farm'))).toBe(true);
    const names = Object.fromEntries(
      Object.entries(inv.arches).map(([arch, c]) => [arch, c!.targets.map((t) => resolveTargetName(t))]),
    );
    expect(names).toEqual({
      x86_64: ['aws-us-east-1', 'libvirt'],
      aarch64: ['aws-us-east-1'],
      ppc64le: ['libvirt', 'openstack'],
      s390x: ['ibmcloud'],
    });
    const hvs = (inv.arches.x86_64!.targets[1] as LibvirtTarget).hypervisors;
    expect(hvs.map((h) => h.uri)).toEqual([
      'qemu+ssh://copr@vmhost-x86-01.example.org/system',
      'qemu+ssh://copr@vmhost-x86-02.example.org/system',
    ]);
    expect((inv.arches.ppc64le!.targets[0] as LibvirtTarget).hypervisors.every((h) => h.arch === 'ppc64le')).toBe(true);
    expect(inv.arches.ppc64le!.targets[1]).toMatchObject({ kind: 'openstack', cloud: 'osuosl', image_type: 'raw' });
    expect(inv.arches.s390x!.targets[0]).toMatchObject({
      kind: 'ibmcloud',
      regions: ['us-east', 'eu-de', 'jp-tok'],
      operating_system: 'red-9-s390x-byol',
    });
    const text = await readFile(join(ROOT, 'inventory/farm.yaml'), 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=./farm.schema.json');
  });
});

describe('resolveTargetName', () => {
  it('prefers the explicit name, then kind-region for one-region targets, then the kind', () => {
    expect(resolveTargetName({ kind: 'aws', name: 'aws-prod', region: 'us-east-1' })).toBe('aws-prod');
    expect(resolveTargetName({ kind: 'aws', region: 'eu-west-1' })).toBe('aws-eu-west-1');
    expect(resolveTargetName({ kind: 'libvirt' })).toBe('libvirt');
    expect(resolveTargetName({ kind: 'openstack', name: 'osuosl' })).toBe('osuosl');
    // ibmcloud spans several regions in one target: its default name is the kind.
    const ibm: IbmCloudTarget = {
      kind: 'ibmcloud',
      regions: ['us-east', 'eu-de'],
      resource_group: 'rg',
      operating_system: 'red-9-s390x-byol',
      cos: { bucket: 'b', region: 'us-east' },
    };
    expect(resolveTargetName(ibm)).toBe('ibmcloud');
  });
});

describe('resolveInventoryPath', () => {
  it('keeps absolute paths, expands ~ and resolves relative ones against the directory', () => {
    expect(resolveInventoryPath('/etc/farm/key', '/srv/inv')).toBe('/etc/farm/key');
    expect(resolveInventoryPath('keys/../key', '/srv/inv')).toBe('/srv/inv/key');
    expect(resolveInventoryPath('~', '/srv/inv')).toBe(home);
    expect(resolveInventoryPath('~/.ssh/id', '/srv/inv')).toBe(join(home, '.ssh/id'));
    // Only a leading "~/" is special: "~user" and "a/~" are ordinary names.
    expect(resolveInventoryPath('~other/x', '/srv/inv')).toBe('/srv/inv/~other/x');
  });
});

describe('problem reports', () => {
  it('formats one line per problem with file:line:column, field, message and fix', () => {
    const problems: InventoryProblem[] = [
      {
        file: 'inventory/farm.yaml',
        line: 12,
        column: 5,
        field: 'workers[1].arch',
        message: "unknown arch 'arm64'",
        fix: 'use one of x86_64, aarch64, ppc64le, s390x',
      },
      { file: 'inventory/farm.yaml', field: '', message: 'the inventory file does not exist', fix: 'check the path' },
    ];
    expect(formatProblems(problems)).toBe(
      "inventory/farm.yaml:12:5: workers[1].arch: unknown arch 'arm64' — fix: use one of x86_64, aarch64, ppc64le, s390x\n" +
        'inventory/farm.yaml: the inventory file does not exist — fix: check the path',
    );
  });

  it('reports every problem at once, in file order, as an INVENTORY FarmError naming the file as given', async () => {
    const path = 'test/fixtures/inventory/many-problems.yaml';
    const err = await loadInventory(join(ROOT, path), { checkFiles: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InventoryError);
    expect(err).toBeInstanceOf(FarmError);
    const e = err as InventoryError;
    expect(e.code).toBe('INVENTORY');
    expect(e.problems.map((p) => [p.line, p.field])).toEqual([
      [7, 'workers[0].hostt'],
      [12, 'workers[1].arch'],
      [15, 'arches.ppc64le'],
      [17, 'arches.ppc64le.targets[0].kind'],
      [19, 'arches.ppc64le.targets[0].secret_access_key'],
    ]);
    expect(e.message.split('\n')).toHaveLength(5);
    expect(e.message).toBe(formatProblems(e.problems));
    expect(e.hint).toMatch(/^5 problems/);
    // The file is named as the caller named it (relative here), so the CLI prints what the user typed.
    const relative = await problemsFromRelative(path);
    expect(relative[0]!.file).toBe(path);
    expect(formatProblems(relative).split('\n')[1]).toBe(
      `${path}:12:5: workers[1].arch: unknown arch 'arm64' (did you mean aarch64?) — fix: use one of x86_64, aarch64, ppc64le, s390x`,
    );
    // Nothing secret is echoed back.
    expect(e.message).not.toContain('hunter2');
  });

  it('reports a missing inventory file as a problem', async () => {
    const problems = await loadInventory(join(tmp, 'nope.yaml')).catch((e: InventoryError) => e.problems);
    expect(problems).toEqual([
      {
        file: join(tmp, 'nope.yaml'),
        field: '',
        message: 'the inventory file does not exist',
        fix: 'check the path, or start a new one from inventory/farm.yaml',
      },
    ]);
  });
});

/** Loads by a path relative to the working directory (vitest runs in the repository root). */
async function problemsFromRelative(path: string): Promise<InventoryProblem[]> {
  expect(process.cwd()).toBe(ROOT);
  return loadInventory(path, { checkFiles: false }).then(
    () => [],
    (e: InventoryError) => e.problems,
  );
}

describe('YAML syntax errors', () => {
  it('points at the offending line and column', async () => {
    const problems = await problemsOf(
      yml(`
        version: 1
        source:
          containerfile: Containerfile
        workers:
          - name: a
            host: [unclosed
      `),
    );
    expect(problems.length).toBeGreaterThanOrEqual(1);
    const p = problems[0]!;
    expect(p.field).toBe('');
    expect(p.message).toMatch(/^YAML syntax: /);
    expect(p.message).not.toContain('\n');
    expect(p.line).toBeGreaterThanOrEqual(6);
  });

  it('explains tabs used for indentation', async () => {
    const problems = await problemsOf('version: 1\nsource:\n\tcontainerfile: x\n');
    expect(problems[0]).toMatchObject({ line: 3, field: '', fix: 'indent with spaces; YAML does not allow tabs for indentation' });
  });

  it('reports duplicate keys with the line of the second one', async () => {
    const problems = await problemsOf(BASE + 'version: 1\n');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 9, column: 1, fix: 'keep only one of the duplicate keys' });
    expect(problems[0]!.message).toMatch(/unique/);
  });

  it('treats an empty file and a non-mapping document as problems', async () => {
    expect(await problemsOf('# nothing yet\n')).toEqual([
      expect.objectContaining({ message: 'the inventory file is empty', field: '' }),
    ]);
    const list = await problemsOf('- version: 1\n');
    expect(list).toEqual([expect.objectContaining({ line: 1, message: 'the inventory must be a mapping of keys, not a list' })]);
  });
});

describe('schema problems', () => {
  it('unknown key: names the allowed keys and the likely intended one', async () => {
    const problems = await problemsOf(BASE.replace('host: 10.231.0.11', 'hostt: 10.231.0.11'));
    // The typo explains the missing `host`, so only the typo is reported.
    expect(problems).toHaveLength(1);
    expect(problems[0]).toEqual({
      file: expect.stringMatching(/farm\.yaml$/),
      line: 6,
      column: 5,
      field: 'workers[0].hostt',
      message: "unknown key 'hostt' (did you mean 'host'?)",
      fix: "rename it to 'host'; keys allowed here: name, host, port, user, arch, identity_file, known_hosts, host_key, podman_socket, storage, output_dir, max_builds, min_free_gib, prepare, cache",
    });
  });

  it.each([
    ['identity-file', 'identity_file'],
    ['knownhosts', 'known_hosts'],
    ['hostKey', 'host_key'],
    ['max_bulids', 'max_builds'],
  ])('unknown key %s → did you mean %s', async (typo, intended) => {
    const problems = await problemsOf(`${BASE}    ${typo}: x\n`);
    expect(only(problems, `workers[0].${typo}`).message).toBe(`unknown key '${typo}' (did you mean '${intended}'?)`);
  });

  it('unknown key with nothing close: remove it, and the allowed keys', async () => {
    const problems = await problemsOf(BASE.replace('source: { containerfile: Containerfile }', 'source: { containerfile: Containerfile, dockerfile_dir: x }'));
    expect(only(problems, 'source.dockerfile_dir')).toMatchObject({
      line: 2,
      column: 41,
      message: "unknown key 'dockerfile_dir'",
      fix: 'remove it; keys allowed here: containerfile, image, tls_verify, context, build_args, publish',
    });
  });

  it('a key of another target kind says which kind it belongs to', async () => {
    const problems = await problemsOf(`${BASE}arches:\n  x86_64:\n    targets:\n      - { kind: aws, region: us-east-1, hypervisors: [] }\n`);
    const p = only(problems, 'arches.x86_64.targets[0].hypervisors');
    expect(p.line).toBe(12);
    expect(p.message).toBe("'hypervisors' is not a setting of aws targets (it belongs to libvirt targets)");
    expect(p.fix).toMatch(/^remove it, or move it to a target of kind libvirt; keys allowed here: kind, name, naming, region, method,/);
  });

  it('an arch section written at the top level is pointed under arches:', async () => {
    const problems = await problemsOf(`${BASE}x86_64:\n  targets: []\n`);
    expect(only(problems, 'x86_64')).toMatchObject({
      line: 9,
      message: "unknown key 'x86_64'",
      fix: 'per-arch settings go under arches:, e.g. arches: { x86_64: { targets: [...] } }',
    });
  });

  it.each([
    ['arm64', 'aarch64'],
    ['amd64', 'x86_64'],
    ['x86-64', 'x86_64'],
    ['ppc64', 'ppc64le'],
    ['s390', 's390x'],
    ['AARCH64', 'aarch64'],
  ])('unknown worker arch %s → did you mean %s', async (wrong, right) => {
    const problems = await problemsOf(BASE.replace('arch: x86_64', `arch: ${wrong}`));
    expect(problems).toEqual([
      {
        file: expect.any(String),
        line: 7,
        column: 5,
        field: 'workers[0].arch',
        message: `unknown arch '${wrong}' (did you mean ${right}?)`,
        fix: 'use one of x86_64, aarch64, ppc64le, s390x',
      },
    ]);
  });

  it('unknown arch without a likely meaning gives just the list', async () => {
    const problems = await problemsOf(BASE.replace('arch: x86_64', 'arch: riscv64'));
    expect(only(problems, 'workers[0].arch').message).toBe("unknown arch 'riscv64'");
  });

  it('unknown arch as a key of arches points at the key', async () => {
    const problems = await problemsOf(`${BASE}arches:\n  arm64:\n    targets: []\n`);
    expect(only(problems, 'arches.arm64')).toMatchObject({
      line: 10,
      column: 3,
      message: "unknown arch 'arm64' (did you mean aarch64?)",
      fix: 'use one of x86_64, aarch64, ppc64le, s390x',
    });
  });

  it('unknown arch of a libvirt hypervisor', async () => {
    const problems = await problemsOf(
      `${BASE}arches:\n  ppc64le:\n    targets:\n      - kind: libvirt\n        hypervisors:\n          - { uri: "qemu+ssh://u@hv/system", arch: ppc64, host_key: "${KEY}" }\n`,
    );
    const p = only(problems, 'arches.ppc64le.targets[0].hypervisors[0].arch');
    expect(p.message).toBe("unknown arch 'ppc64' (did you mean ppc64le?)");
    expect(p.line).toBe(14);
  });

  it.each([
    ['port: "2222"', 'workers[0].port', 'expected a number, got the string "2222"', 'remove the quotes: port: 2222'],
    ['port: 22.5', 'workers[0].port', 'expected a whole number, got number 22.5', 'use a whole number, e.g. port: 23'],
    ['user: 0', 'workers[0].user', 'expected a string, got number 0', 'quote it: user: "0"'],
    ['max_builds: [2]', 'workers[0].max_builds', 'expected a number, got a list', 'write a number here'],
  ])('wrong type in a worker: %s', async (line, field, message, fix) => {
    const problems = await problemsOf(`${BASE}    ${line}\n`);
    expect(only(problems, field)).toMatchObject({ line: 9, column: 5, message, fix });
  });

  it('wrong type: a string where a list belongs, yes/no where a boolean belongs', async () => {
    const problems = await problemsOf(`${BASE.replace('builds_dir: ../builds', 'builds_dir: ../builds, keep_remote: "yes"')}builder:\n  extra_args: --use-librepo=True\n`);
    expect(only(problems, 'builder.extra_args')).toMatchObject({
      line: 10,
      message: 'expected a list, got the string "--use-librepo=True"',
      fix: 'write a list, e.g. extra_args: [--use-librepo=True]',
    });
    expect(only(problems, 'settings.keep_remote')).toMatchObject({
      line: 3,
      message: 'expected true or false, got the string "yes"',
      fix: 'write true (unquoted, lower case)',
    });
  });

  it('an empty value: required fields need one, optional ones may be deleted', async () => {
    const problems = await problemsOf(BASE.replace('containerfile: Containerfile', 'containerfile:') + '    identity_file:\n');
    expect(only(problems, 'source.containerfile')).toMatchObject({
      line: 2,
      message: "'containerfile' is empty (expected a string)",
      fix: 'give it a value: <path of the Containerfile, relative to the inventory file>',
    });
    expect(only(problems, 'workers[0].identity_file')).toMatchObject({
      line: 9,
      fix: 'give it a value or delete the line',
    });
  });

  it.each([
    ['rootfs: ext3', 'builder.rootfs', "'ext3' is not a valid rootfs (did you mean 'ext4'?)", 'use one of xfs, ext4, btrfs'],
    ['pull: alwyas', 'builder.pull', "'alwyas' is not a valid pull (did you mean 'always'?)", 'use one of always, missing, never, newer'],
    ['rootfs: zfs', 'builder.rootfs', "'zfs' is not a valid rootfs (did you mean 'xfs'?)", 'use one of xfs, ext4, btrfs'],
  ])('bad enum value %s lists the allowed values', async (line, field, message, fix) => {
    const problems = await problemsOf(`${BASE}builder:\n  ${line}\n`);
    expect(only(problems, field)).toMatchObject({ line: 10, column: 3, message, fix });
  });

  it('bad image type in an arch list points at the list item', async () => {
    const problems = await problemsOf(`${BASE}arches:\n  x86_64:\n    types: [ami, iso]\n`);
    expect(only(problems, 'arches.x86_64.types[1]')).toMatchObject({
      line: 11,
      column: 18,
      message: "'iso' is not a valid types entry",
      fix: 'use one of ami, raw, qcow2, vmdk, vhd, gce',
    });
  });

  it('missing required field points at the parent object', async () => {
    const problems = await problemsOf(BASE.replace('    host: 10.231.0.11\n', ''));
    expect(problems).toEqual([
      {
        file: expect.any(String),
        line: 5,
        column: 5,
        field: 'workers[0].host',
        message: "missing required field 'host'",
        fix: "add host: <the worker's host name or address>",
      },
    ]);
  });

  it('missing top-level sections, and an unsupported version', async () => {
    const problems = await problemsOf('version: 2\nworkers: []\n');
    expect(only(problems, 'version')).toMatchObject({
      line: 1,
      message: 'unsupported inventory version 2',
      fix: 'set version: 1 (the only format this farm reads)',
    });
    expect(only(problems, 'source')).toMatchObject({
      line: 1,
      message: "missing required field 'source'",
      fix: 'add source: { containerfile: ./Containerfile }',
    });
    expect(only(problems, 'workers')).toMatchObject({
      line: 2,
      message: 'workers needs at least 1 entry',
      fix: 'add one, e.g. workers: [{ name: builder-x86_64, host: <host name>, arch: x86_64 }], or a pool under pools:',
    });
  });

  it('a quoted version number', async () => {
    const problems = await problemsOf(BASE.replace('version: 1', 'version: "1"'));
    expect(problems).toEqual([expect.objectContaining({ line: 1, field: 'version', message: 'the version is a string', fix: 'remove the quotes: version: 1' })]);
  });

  it('targets: missing kind, unknown kind, and missing fields of a kind', async () => {
    const problems = await problemsOf(
      `${BASE}arches:\n  x86_64:\n    targets:\n      - region: us-east-1\n      - kind: ec2\n        region: us-east-1\n      - kind: ibmcloud\n        regions: []\n`,
    );
    expect(only(problems, 'arches.x86_64.targets[0].kind')).toMatchObject({
      line: 12,
      message: 'this target has no kind',
      fix: 'add kind: <one of aws, ibmcloud, libvirt, openstack, azure>',
    });
    expect(only(problems, 'arches.x86_64.targets[1].kind')).toMatchObject({
      line: 13,
      message: "unknown target kind 'ec2' (did you mean aws?)",
      fix: 'use one of aws, ibmcloud, libvirt, openstack, azure',
    });
    expect(only(problems, 'arches.x86_64.targets[2].regions')).toMatchObject({
      line: 16,
      message: 'regions needs at least 1 entry',
      fix: 'add one, e.g. regions: [<region>, ...], e.g. [us-east, eu-de]',
    });
    expect(only(problems, 'arches.x86_64.targets[2].resource_group')).toMatchObject({
      line: 15,
      message: "missing required field 'resource_group'",
    });
    expect(only(problems, 'arches.x86_64.targets[2].cos').fix).toBe('add cos: { bucket: <bucket>, region: <region> }');
  });

  it('format rules use the schema message as the fix', async () => {
    const problems = await problemsOf(
      BASE.replace('name: builder-x86_64', 'name: Builder X86').replace(`host_key: "${KEY}"`, 'host_key: "ssh-ed25519 AAAA"') +
        '    storage: var/lib/containers/storage\n    port: 70000\n',
    );
    expect(only(problems, 'workers[0].name')).toMatchObject({
      line: 5,
      message: "invalid name 'Builder X86'",
      fix: 'use lower-case letters, digits, ".", "_" and "-", starting with a letter or digit',
    });
    expect(only(problems, 'workers[0].host_key')).toMatchObject({
      line: 8,
      fix: 'a pinned key is "SHA256:" and 43 base64 characters, as ssh-keygen -lf prints',
    });
    expect(only(problems, 'workers[0].storage')).toMatchObject({
      line: 9,
      message: "invalid storage 'var/lib/containers/storage'",
      fix: 'use an absolute path on the worker, e.g. /var/lib/farm/output',
    });
    expect(only(problems, 'workers[0].port')).toMatchObject({ line: 10, message: '70000 is too large for port', fix: 'use a value <= 65535' });
  });

  it('worker output_dir must be absolute too', async () => {
    const problems = await problemsOf(`${BASE}    output_dir: output\n`);
    expect(only(problems, 'workers[0].output_dir').fix).toBe('use an absolute path on the worker, e.g. /var/lib/farm/output');
  });
});

describe('secrets', () => {
  const withTarget = (target: string) => `${BASE}arches:\n  x86_64:\n    targets:\n      - ${target}\n`;

  it.each([
    ['{ kind: aws, region: us-east-1, secret_access_key: x }', 'secret_access_key', /AWS credentials come from the environment \(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE\) or ~\/\.aws\/credentials/],
    ['{ kind: ibmcloud, regions: [us-east], resource_group: rg, operating_system: os, cos: { bucket: b, region: r }, api_key: x }', 'api_key', /IBMCLOUD_API_KEY/],
    ['{ kind: openstack, password: x }', 'password', /clouds\.yaml\/secure\.yaml .* OS_PASSWORD/],
    ['{ kind: libvirt, hypervisors: [{ uri: "qemu+ssh://u@h/system", arch: x86_64, host_key: "' + KEY + '", Password: x }] }', 'Password', /hypervisors authenticate with an SSH key/],
  ])('a secret-looking key in a target: %s', async (target, key, fix) => {
    const problems = await problemsOf(withTarget(target));
    // One specific problem, not also the generic "unknown key".
    const hits = problems.filter((p) => p.field.endsWith(key));
    expect(hits).toHaveLength(1);
    expect(hits[0]!.line).toBe(12);
    expect(hits[0]!.message).toBe(`'${key}' looks like a secret, and secrets never belong in the inventory (it is committed and shared)`);
    expect(hits[0]!.fix).toMatch(/^delete it; /);
    expect(hits[0]!.fix).toMatch(fix);
    expect(formatProblems(problems)).not.toMatch(/: x\b/);
  });

  it('finds secrets in free-form maps (tags, properties) and in workers', async () => {
    const problems = await problemsOf(
      `${BASE}    password: hunter2\narches:\n  x86_64:\n    targets:\n      - kind: openstack\n        properties: { os_token: abc }\n`,
    );
    expect(only(problems, 'workers[0].password')).toMatchObject({ line: 9, fix: expect.stringMatching(/^delete it; workers authenticate with an SSH key/) });
    expect(only(problems, 'arches.x86_64.targets[0].properties.os_token').line).toBe(14);
    expect(formatProblems(problems)).not.toContain('hunter2');
  });

  it('no key of the schema itself looks like a secret', async () => {
    const { isSecretKey } = await import('../../src/inventory/secrets.ts');
    const schemaText = await readFile(join(ROOT, 'inventory/farm.schema.json'), 'utf8');
    const keys = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        for (const [k, child] of Object.entries(v)) {
          if (k === 'properties' && child && typeof child === 'object') Object.keys(child).forEach((p) => keys.add(p));
          walk(child);
        }
      }
    };
    walk(JSON.parse(schemaText));
    expect(keys.size).toBeGreaterThan(40);
    expect([...keys].filter(isSecretKey)).toEqual([]);
  });
});

describe('semantic checks', () => {
  it('duplicate worker names', async () => {
    const problems = await problemsOf(`${BASE}  - name: builder-x86_64\n    host: 10.231.0.21\n    arch: x86_64\n    host_key: "${KEY}"\n`);
    expect(problems).toEqual([
      {
        file: expect.any(String),
        line: 9,
        column: 5,
        field: 'workers[1].name',
        message: "duplicate worker name 'builder-x86_64' (workers[0] has it too)",
        fix: 'give each worker a unique name, e.g. builder-<arch>-2',
      },
    ]);
  });

  it('duplicate target names within an arch, by default name or explicit name; other arches may reuse them', async () => {
    const problems = await problemsOf(
      yml(`
        version: 1
        source: { containerfile: Containerfile, context: src }
        workers:
          - { name: a, host: h1, arch: x86_64, host_key: "${KEY}" }
          - { name: b, host: h2, arch: aarch64, host_key: "${KEY}" }
        arches:
          x86_64:
            targets:
              - { kind: aws, region: us-east-1 }
              - { kind: aws, region: us-east-1 }
              - { kind: aws, region: us-east-1, name: second }
              - { kind: openstack, name: second }
          aarch64:
            targets:
              - { kind: aws, region: us-east-1 }
      `),
    );
    expect(problems.map((p) => [p.line, p.field, p.message])).toEqual([
      [10, 'arches.x86_64.targets[1]', "duplicate target name 'aws-us-east-1' in arches.x86_64 (targets[0] has it too, by default)"],
      [12, 'arches.x86_64.targets[3].name', "duplicate target name 'second' in arches.x86_64 (targets[2] has it too)"],
    ]);
    expect(problems[0]!.fix).toBe('give one of them a distinct name: (--only and --skip select targets by name)');
  });

  it('a target that cannot take the arch says why and where to move it', async () => {
    const problems = await problemsOf(
      yml(`
        version: 1
        source: { containerfile: Containerfile, context: src }
        workers:
          - { name: p, host: h1, arch: ppc64le, host_key: "${KEY}" }
          - { name: a, host: h2, arch: aarch64, host_key: "${KEY}" }
        arches:
          ppc64le:
            targets:
              - kind: aws
                region: us-east-1
          aarch64:
            targets:
              - kind: ibmcloud
                regions: [us-east]
                resource_group: rg
                operating_system: os
                cos: { bucket: b, region: us-east }
      `),
    );
    expect(problems).toEqual([
      {
        file: expect.any(String),
        line: 9,
        column: 9,
        field: 'arches.ppc64le.targets[0].kind',
        message: 'AWS AMIs exist for x86_64 and aarch64 only; aws targets cannot take ppc64le images',
        fix: 'move this target to arches.x86_64 or arches.aarch64; ppc64le images can go to libvirt or openstack targets',
      },
      {
        file: expect.any(String),
        line: 13,
        column: 9,
        field: 'arches.aarch64.targets[0].kind',
        message: 'IBM Cloud VPC custom images exist for x86_64 and s390x only; ibmcloud targets cannot take aarch64 images',
        fix: 'move this target to arches.x86_64 or arches.s390x; aarch64 images can go to aws or libvirt or openstack or azure targets',
      },
    ]);
  });

  it('a libvirt hypervisor of another arch than its section, and a hypervisor listed twice', async () => {
    const problems = await problemsOf(
      yml(`
        ${BASE.trimEnd().split('\n').join('\n        ')}
        arches:
          x86_64:
            targets:
              - kind: libvirt
                hypervisors:
                  - { uri: "qemu+ssh://u@hv1/system", arch: x86_64, host_key: "${KEY}" }
                  - { uri: "qemu+ssh://u@hv2/system", arch: ppc64le, host_key: "${KEY}" }
                  - { uri: "qemu+ssh://u@hv1/system", arch: x86_64, host_key: "${KEY}" }
      `),
    );
    expect(only(problems, 'arches.x86_64.targets[0].hypervisors[1].arch')).toMatchObject({
      line: 15,
      message: "hypervisor arch ppc64le differs from this section's arch x86_64: a hypervisor runs guests of its own arch only",
      fix: 'move this hypervisor to a libvirt target under arches.ppc64le, or correct its arch',
    });
    expect(only(problems, 'arches.x86_64.targets[0].hypervisors[2].uri')).toMatchObject({
      line: 16,
      message: 'hypervisor qemu+ssh://u@hv1/system is listed twice (hypervisors[0] too)',
    });
    expect(problems).toHaveLength(2);
  });

  it('aws s3-import needs a bucket; ebs-direct does not', async () => {
    const problems = await problemsOf(
      `${BASE}arches:\n  x86_64:\n    targets:\n      - kind: aws\n        region: eu-west-1\n        method: s3-import\n      - { kind: aws, name: direct, region: eu-west-1 }\n`,
    );
    expect(problems).toEqual([
      {
        file: expect.any(String),
        line: 12,
        column: 9,
        field: 'arches.x86_64.targets[0].bucket',
        message: 'method s3-import needs a bucket to stage the disk in',
        fix: 'add bucket: <an S3 bucket in eu-west-1 the vmimport role can read>, or use method: ebs-direct (no bucket needed)',
      },
    ]);
  });

  it('an arch with targets or types but no worker of that arch is an error', async () => {
    const problems = await problemsOf(
      `${BASE}arches:\n  s390x:\n    targets:\n      - { kind: openstack }\n  aarch64:\n    types: [qcow2]\n  ppc64le: {}\n`,
    );
    expect(problems.map((p) => [p.line, p.field, p.message, p.fix])).toEqual([
      [10, 'arches.s390x', 'targets for s390x but no worker has arch s390x: nothing could build them', 'add a worker with arch: s390x, or remove the arches.s390x section'],
      [13, 'arches.aarch64', 'types for aarch64 but no worker has arch aarch64: nothing could build them', 'add a worker with arch: aarch64, or remove the arches.aarch64 section'],
    ]);
  });

  it('a worker whose arch has no arches entry is fine, and a misspelt worker arch is reported once', async () => {
    const ok = await parseInventory(`${BASE}arches: {}\n`, { file: join(tmp, 'x.yaml'), dir: tmp }, { checkFiles: false });
    expect(ok.inventory.arches).toEqual({});
    const problems = await problemsOf(
      BASE.replace('arch: x86_64', 'arch: arm64') + 'arches:\n  aarch64:\n    targets: [{ kind: openstack }]\n',
    );
    expect(problems.map((p) => p.field)).toEqual(['workers[0].arch']);
  });

  it('name templates may only use the known fields', async () => {
    const problems = await problemsOf(
      `${BASE}naming:\n  template: "{name}-{arc}-{date}"\narches:\n  x86_64:\n    targets:\n      - { kind: openstack, naming: "{name}-{region}" }\n`,
    );
    expect(only(problems, 'naming.template')).toMatchObject({
      line: 10,
      message: "unknown field {arc} in name template '{name}-{arc}-{date}' (did you mean {arch}?)",
      fix: 'use {name} {arch} {date} {time} {build_id}',
    });
    expect(only(problems, 'arches.x86_64.targets[0].naming').message).toBe("unknown field {region} in name template '{name}-{region}'");
  });
});

describe('file checks', () => {
  const CONTAINERFILE = { Containerfile: 'FROM scratch\n' };

  it('checks Containerfile, context and builder config', async () => {
    const text = yml(`
      version: 1
      source:
        containerfile: ctx
        context: Containerfile.real
      builder:
        config: missing.toml
      workers:
        - { name: w, host: h, arch: x86_64, host_key: "${KEY}" }
    `);
    const problems = await problemsOf(text, {}, { 'ctx/a': '', 'Containerfile.real': '' });
    const file = problems[0]!.file;
    const dir = dirname(file);
    expect(problems.map((p) => [p.line, p.field, p.message, p.fix])).toEqual([
      [3, 'source.containerfile', `Containerfile ${dir}/ctx is a directory`, `point it at the file itself, e.g. ${dir}/ctx/Containerfile`],
      [4, 'source.context', `build context ${dir}/Containerfile.real is not a directory`, "point it at a directory (relative paths start from the inventory file's directory)"],
      [6, 'builder.config', `builder config ${dir}/missing.toml does not exist`, "check the path; relative paths start from the inventory file's directory"],
    ]);
  });

  it('a missing Containerfile is reported; checkFiles: false skips every file check', async () => {
    const problems = await problemsOf(BASE, {});
    expect(only(problems, 'source.containerfile').message).toMatch(/^Containerfile .*\/Containerfile does not exist$/);
    const file = await writeInventory(BASE);
    await expect(loadInventory(file, { checkFiles: false })).resolves.toMatchObject({ file });
  });

  it('identity files must exist and be private (chmod 600)', async () => {
    const file = await writeInventory(
      yml(`
        version: 1
        source: { containerfile: Containerfile }
        workers:
          - { name: a, host: h1, arch: x86_64, host_key: "${KEY}", identity_file: keys/open }
          - { name: b, host: h2, arch: x86_64, host_key: "${KEY}", identity_file: keys/private }
          - { name: c, host: h3, arch: x86_64, host_key: "${KEY}", identity_file: keys/none }
        settings: { builds_dir: ../builds }
      `),
      { ...CONTAINERFILE, 'keys/open': 'k', 'keys/private': 'k' },
    );
    const dir = dirname(file);
    await chmod(join(dir, 'keys/open'), 0o644);
    await chmod(join(dir, 'keys/private'), 0o600);
    const problems = await loadInventory(file).catch((e: InventoryError) => e.problems);
    expect(problems).toEqual([
      {
        file,
        line: 4,
        column: 104, // the key inside the flow mapping
        field: 'workers[0].identity_file',
        message: `identity file ${dir}/keys/open is accessible by group or others (mode 0644)`,
        fix: `chmod 600 ${dir}/keys/open`,
      },
      {
        file,
        line: 6,
        column: 104, // the key inside the flow mapping
        field: 'workers[2].identity_file',
        message: `identity file ${dir}/keys/none does not exist`,
        fix: "check the path; relative paths start from the inventory file's directory",
      },
    ]);
    await chmod(join(dir, 'keys/open'), 0o600);
    await writeFile(join(dir, 'keys/none'), 'k', { mode: 0o400 });
    await expect(loadInventory(file)).resolves.toMatchObject({ file });
  });

  it('known_hosts must exist unless the host key is pinned, including the default ~/.ssh/known_hosts', async () => {
    const text = yml(`
      version: 1
      source: { containerfile: Containerfile }
      workers:
        - { name: a, host: h1, arch: x86_64, known_hosts: kh/missing }
        - { name: b, host: h2, arch: x86_64 }
        - { name: c, host: h3, arch: x86_64, host_key: "${KEY}" }
      arches:
        x86_64:
          targets:
            - kind: libvirt
              hypervisors:
                - { uri: "qemu+ssh://u@hv/system", arch: x86_64, known_hosts: kh/hv }
      settings: { builds_dir: ../builds }
    `);
    await rm(join(home, '.ssh'), { recursive: true, force: true });
    const problems = await problemsOf(text, {}, CONTAINERFILE);
    const dir = dirname(problems[0]!.file);
    expect(problems.map((p) => [p.line, p.field, p.message])).toEqual([
      [4, 'workers[0].known_hosts', `known_hosts file ${dir}/kh/missing does not exist`],
      [5, 'workers[1].known_hosts', `no host_key or known_hosts given, and the default ${home}/.ssh/known_hosts does not exist: the host key could not be verified`],
      [12, 'arches.x86_64.targets[0].hypervisors[0].known_hosts', `known_hosts file ${dir}/kh/hv does not exist`],
    ]);
    expect(problems[1]!.fix).toMatch(/^set known_hosts: .*, or pin host_key: SHA256:/);

    await mkdir(join(home, '.ssh'), { recursive: true });
    await writeFile(join(home, '.ssh/known_hosts'), 'h2 ssh-ed25519 AAAA\n');
    const file = await writeInventory(text, { ...CONTAINERFILE, 'kh/missing': '', 'kh/hv': '' });
    await expect(loadInventory(file)).resolves.toMatchObject({ file });
  });

  it('file problems are reported together with schema problems', async () => {
    const problems = await problemsOf(BASE.replace('arch: x86_64', 'arch: amd64'), {});
    expect(problems.map((p) => p.field)).toEqual(['source.containerfile', 'workers[0].arch']);
  });
});
