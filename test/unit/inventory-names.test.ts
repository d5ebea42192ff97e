// Image names: every name each target will give, checked against that target's own rules at
// `farm inventory check`, and the same rule functions in the uploaders.

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { loadInventory } from '../../src/inventory/load.ts';
import { awsTargetSchema } from '../../uploaders/aws/schema.ts';
import { ibmcloudTargetSchema } from '../../uploaders/ibmcloud/schema.ts';
import { sampleNames } from '../../src/naming.ts';
import { amiNameProblem } from '../../uploaders/aws/names.ts';
import { createAwsUploader } from '../../uploaders/aws/index.ts';
import { createIbmCloudUploader } from '../../uploaders/ibmcloud/index.ts';
import { imageNameProblem, vpcImageName } from '../../uploaders/ibmcloud/names.ts';
import { volumeNameProblem } from '../../uploaders/libvirt/names.ts';
import { glanceNameProblem } from '../../uploaders/openstack/names.ts';
import type { Artifact } from '../../src/core/artifact.ts';
import { KEY, VALID, loads, only, problemsOf, removeCases, yml } from './inventory-support.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

afterAll(removeCases);

describe('each kind’s name rule', () => {
  it('AWS: 3-128 characters of letters, digits, spaces and ( ) [ ] . / - \' @ _', () => {
    for (const ok of ['copr-builder-image-bootc-20261231-235959-x86_64', "farm (test) [1] a/b 'q' @x_y.z", 'abc', 'a'.repeat(128)]) {
      expect(amiNameProblem(ok)).toBeUndefined();
    }
    expect(amiNameProblem('ab')).toMatch(/at least 3/);
    expect(amiNameProblem('a'.repeat(129))).toMatch(/at most 128/);
    expect(amiNameProblem('farm!x:y')).toBe(`'farm!x:y' contains "!", ":", which AMI names cannot hold`);
    expect(amiNameProblem('färm,1')).toMatch(/"ä", ","/);
  });

  it('IBM Cloud VPC: the farm’s name lower-cased with _ and . as -, then 1-63 of [a-z0-9-] from a letter to a letter or digit', () => {
    expect(vpcImageName('Farm_1.x86_64')).toBe('farm-1-x86-64');
    expect(imageNameProblem('f')).toBeUndefined();
    expect(imageNameProblem(`f${'a'.repeat(62)}`)).toBeUndefined();
    expect(imageNameProblem(`f${'a'.repeat(63)}`)).toMatch(/at most 63/);
    expect(imageNameProblem('9farm')).toMatch(/start with a letter/);
    expect(imageNameProblem('ibm-farm')).toMatch(/reserves/);
  });

  it('Glance: at most 255 characters, counted as code points', () => {
    expect(glanceNameProblem('a'.repeat(255))).toBeUndefined();
    expect(glanceNameProblem('😀'.repeat(255))).toBeUndefined(); // 510 UTF-16 units
    expect(glanceNameProblem('a'.repeat(256))).toMatch(/256 characters long; Glance image names have at most 255/);
  });

  it('libvirt: a file name in the pool, never a path, ., .., hidden or an option', () => {
    for (const ok of ['copr-builder-x86_64-20261231_235959', 'a.b+c', 'a'.repeat(255)]) expect(volumeNameProblem(ok)).toBeUndefined();
    expect(volumeNameProblem('a/b')).toMatch(/contains '\/'/);
    for (const bad of ['.', '..', '.hidden', '-rf', 'a b', '']) expect(volumeNameProblem(bad)).toBeDefined();
    expect(volumeNameProblem('a'.repeat(256))).toMatch(/at most 255/);
  });

  it('names are checked for the narrowest and the widest build id (a 99th build in one second)', () => {
    expect(sampleNames('{name}-{build_id}-{arch}', { name: 'farm', arch: 's390x' }).map((s) => s.name)).toEqual([
      'farm-20261231t235959z-s390x',
      'farm-20261231t235959z-99-s390x',
    ]);
    // Without {build_id} every build id gives one name.
    expect(sampleNames('{name}-{date}-{time}', { name: 'farm', arch: 's390x' })).toHaveLength(1);
  });
});

const withTargets = (arch: string, targets: string, top = '') =>
  `${VALID.replace('arch: x86_64', `arch: ${arch}`)}${top}arches:\n  ${arch}:\n    targets:\n${targets}`;

const IBM = 'kind: ibmcloud, regions: [us-east], resource_group: rg, operating_system: red-9-s390x-byol, cos: { bucket: b, region: us-east }';

describe('inventory check: names a target refuses', () => {
  it('a name from naming.template is reported at the target, with the name, the arch and the rule', async () => {
    const problems = await problemsOf(withTargets('x86_64', '      - { kind: aws, region: us-east-1 }\n', 'naming: { template: "{name} {date}!{arch}" }\n'));
    expect(problems).toEqual([
      {
        file: expect.any(String),
        line: 13,
        column: 9,
        field: 'arches.x86_64.targets[0]',
        message: `AWS AMI name refused: naming.template '{name} {date}!{arch}' gives 'farm 20261231!x86_64' for x86_64: 'farm 20261231!x86_64' contains "!", which AMI names cannot hold`,
        fix: "set naming: on this target (or change naming.template) to a template whose names are 3-128 characters: letters, digits, spaces and ( ) [ ] . / - ' @ _",
      },
    ]);
  });

  it('a target’s own naming is reported at its naming line', async () => {
    const problems = await problemsOf(withTargets('x86_64', '      - kind: libvirt\n        naming: "{name}/{arch}"\n        hypervisors: [{ uri: "qemu+ssh://root@hv/system", arch: x86_64, host_key: "' + KEY + '" }]\n'));
    expect(only(problems, 'arches.x86_64.targets[0].naming')).toMatchObject({
      line: 13,
      message: expect.stringMatching(/^libvirt volume name refused: this target's naming '\{name\}\/\{arch\}' gives 'farm\/x86_64' for x86_64: .*never a path/),
      fix: expect.stringMatching(/^change naming to a template whose names are 1-255 letters, digits/),
    });
  });

  it('a name that only the widest build id makes too long says so', async () => {
    // farm-<99 a>-20261231t235959z-x86_64 is 128 characters; with -99 it is 131.
    const problems = await problemsOf(withTargets('x86_64', `      - { kind: aws, region: us-east-1, naming: "{name}-${'a'.repeat(99)}-{build_id}-{arch}" }\n`));
    expect(only(problems, 'arches.x86_64.targets[0].naming').message).toMatch(
      /for a build that is the 99th to start in its second \(build id 20261231t235959z-99\): '.*' is 131 characters long; AMI names have at most 128$/,
    );
  });

  it('IBM Cloud: the name as VPC writes it (lower case, - for _ and .) must start with a letter and not with ibm-', async () => {
    const digits = await problemsOf(withTargets('s390x', `      - { ${IBM}, naming: "{date}-{name}" }\n`));
    expect(only(digits, 'arches.s390x.targets[0].naming').message).toMatch(/gives '20261231-farm' for s390x: .*start with a letter/);
    const reserved = await problemsOf(withTargets('s390x', `      - { ${IBM} }\n`, 'naming: { name: ibm-images }\n'));
    expect(only(reserved, 'arches.s390x.targets[0]').message).toMatch(/'ibm-images-20261231-235959-s390x' for s390x: .*reserves/);
    const mapped = await problemsOf(withTargets('s390x', `      - { ${IBM}, naming: "{name}-{arch}_" }\n`));
    expect(only(mapped, 'arches.s390x.targets[0].naming').message).toMatch(/gives 'farm-s390x-' for s390x \(the farm's 'farm-s390x_' as IBM Cloud VPC image names are written\)/);
    // x86_64 becomes x86-64: the default template is fine for VPC.
    await expect(loads(withTargets('x86_64', `      - { ${IBM.replace('red-9-s390x-byol', 'red-9-amd64-byol')} }\n`))).resolves.toBeDefined();
  });

  it('Glance: more than 255 characters', async () => {
    const problems = await problemsOf(withTargets('ppc64le', `      - { kind: openstack, naming: "{name}-${'x'.repeat(251)}" }\n`));
    expect(only(problems, 'arches.ppc64le.targets[0].naming').message).toMatch(/^Glance image name refused: .*256 characters long; Glance image names have at most 255$/);
  });

  it('every refused name of every target and arch is reported at once', async () => {
    const problems = await problemsOf(
      yml(`
        version: 1
        source: { containerfile: Containerfile }
        settings: { builds_dir: ../builds }
        naming: { name: farm, template: "{name}:{arch}" }
        workers:
          - { name: a, host: h1, arch: x86_64, host_key: "${KEY}" }
          - { name: b, host: h2, arch: s390x, host_key: "${KEY}" }
        arches:
          x86_64:
            targets:
              - { kind: aws, region: us-east-1 }
              - { kind: aws, region: eu-west-1, naming: "{name}-{arch}-{date}" }
              - { kind: libvirt, hypervisors: [{ uri: "qemu+ssh://root@hv/system", arch: x86_64, host_key: "${KEY}" }] }
          s390x:
            targets:
              - { ${IBM} }
              - { kind: openstack }
      `),
    );
    // Glance takes ':'; the second AWS target has its own valid naming.
    expect(problems.map((p) => [p.line, p.field, p.message.split(':')[0]])).toEqual([
      [11, 'arches.x86_64.targets[0]', 'AWS AMI name refused'],
      [13, 'arches.x86_64.targets[2]', 'libvirt volume name refused'],
      [16, 'arches.s390x.targets[0]', 'IBM Cloud VPC image name refused'],
    ]);
  });

  it('a template with an unknown field gets the template problem only', async () => {
    const problems = await problemsOf(withTargets('x86_64', '      - { kind: aws, region: us-east-1, naming: "{name}-{version}!" }\n'));
    expect(problems.map((p) => p.message)).toEqual(["unknown field {version} in name template '{name}-{version}!'"]);
  });

  it('the shipped inventories give only names their targets take', async () => {
    for (const path of ['inventory/farm.yaml', 'inventory/lab.yaml']) {
      await expect(loadInventory(join(ROOT, path), { checkFiles: false })).resolves.toMatchObject({ file: join(ROOT, path) });
    }
  });
});

describe('AWS tags', () => {
  it('keys of 1-128 characters, values of at most 256, neither starting with aws:', async () => {
    const long = 'k'.repeat(129);
    const problems = await problemsOf(withTargets('x86_64', `      - kind: aws\n        region: us-east-1\n        tags: { ${long}: x, owner: "${'v'.repeat(257)}", "AWS:x": y, app: "aws:cloudformation", ok: "${'v'.repeat(256)}" }\n`));
    expect(problems.map((p) => [p.line, p.field, p.message])).toEqual([
      [14, `arches.x86_64.targets[0].tags.${long}`, 'the tag key is 129 characters long; AWS takes at most 128'],
      [14, 'arches.x86_64.targets[0].tags.owner', "the value of tag 'owner' is 257 characters long; AWS takes at most 256"],
      [14, 'arches.x86_64.targets[0].tags["AWS:x"]', "the tag key 'AWS:x' starts with 'aws:', which AWS reserves for its own tags"],
      [14, 'arches.x86_64.targets[0].tags.app', "the value of tag 'app' starts with 'aws:', which AWS reserves for its own tags"],
    ]);
  });
});

describe('the uploaders apply the same rules before creating anything', () => {
  const artifact = (arch: Artifact['arch'], format: 'raw' | 'qcow2'): Artifact => ({
    buildId: '20261231t235959z',
    arch,
    type: format === 'raw' ? 'ami' : 'qcow2',
    imageName: 'unused',
    disk: { path: '/nonexistent/disk', name: 'disk', size: 1 << 20, sha256: '0'.repeat(64), format },
    extra: [],
    worker: 'w',
    builtAt: '2026-12-31T23:59:59Z',
  });
  const ctx = { signal: new AbortController().signal, log: () => {}, onProgress: () => {}, tags: {} };

  it('AWS refuses a name EC2 would refuse, without a request (the endpoint here answers nothing)', async () => {
    const target = awsTargetSchema.parse({ kind: 'aws', region: 'us-east-1', endpoint: 'http://127.0.0.1:9' });
    const up = createAwsUploader(target, { credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' }, maxAttempts: 1 });
    const err = await up.upload(artifact('x86_64', 'raw'), 'farm:20261231!x86_64', ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FarmError);
    expect(err).toMatchObject({ code: 'UPLOAD', message: `aws-us-east-1: 'farm:20261231!x86_64' contains ":", "!", which AMI names cannot hold` });
  });

  it('IBM Cloud refuses a name VPC would refuse, before asking for a token', async () => {
    const target = ibmcloudTargetSchema.parse({
      kind: 'ibmcloud',
      regions: ['us-east'],
      resource_group: 'rg',
      operating_system: 'red-9-s390x-byol',
      cos: { bucket: 'b', region: 'us-east' },
      endpoints: { iam: 'http://127.0.0.1:9', vpc: 'http://127.0.0.1:9/{region}/v1', resource_manager: 'http://127.0.0.1:9' },
    });
    const up = createIbmCloudUploader(target, { env: {} });
    const err = await up.upload(artifact('s390x', 'qcow2'), '20261231-farm', ctx).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UPLOAD', message: expect.stringMatching(/^IBM Cloud: '20261231-farm' is not a valid VPC image name/) });
  });
});
