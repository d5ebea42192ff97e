// Inventory rules for what would otherwise fail only on a worker, in a child process or at an
// upload: worker paths, SSH file names, libvirt URIs, control characters, the build context, git
// URLs with credentials, and YAML that is too big, too deep or expands too far.

import { execFileSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatProblems, loadInventory, parseInventory } from '../../src/inventory/load.ts';
import { MAX_ALIAS_EXPANSIONS, MAX_DEPTH, MAX_INVENTORY_BYTES } from '../../src/inventory/yaml-limits.ts';
import { KEY, VALID, loads, only, problemsOf, removeCases, writeInventory, yml } from './inventory-support.ts';

afterAll(removeCases);

const hypervisor = (uri: string, extra = '') =>
  `${VALID}arches:\n  x86_64:\n    targets:\n      - kind: libvirt\n        hypervisors:\n          - { uri: "${uri}", arch: x86_64, host_key: "${KEY}"${extra} }\n`;

describe('worker paths (bind mounts, socket forwards, rm targets)', () => {
  it.each([
    ['storage: /', "'/' is the whole filesystem of the worker", 'use a directory of its own, e.g. /var/lib/farm/output'],
    ['output_dir: //', "'/' is the whole filesystem of the worker", 'use a directory of its own, e.g. /var/lib/farm/output'],
    ['storage: /var/lib/containers/storage/', "'/var/lib/containers/storage/' ends with '/'", 'write /var/lib/containers/storage'],
    ['output_dir: /srv/farm/../etc', "'/srv/farm/../etc' has a '..' segment: it does not name what it seems to", 'write the path it means, e.g. /srv/etc'],
    ['output_dir: "/srv/farm:ro"', "'/srv/farm:ro' contains ':', which separate the fields of a bind mount (source:target:options)", "use a path without ':' and ','"],
    ['storage: /srv/a,b', "'/srv/a,b' contains ',', which separate the fields of a bind mount (source:target:options)", "use a path without ':' and ','"],
    ['podman_socket: /run//podman/./podman.sock', "'/run//podman/./podman.sock' has empty or '.' segments", 'write /run/podman/podman.sock'],
  ])('%s', async (line, message, fix) => {
    const field = `workers[0].${line.split(':')[0]}`;
    expect(only(await problemsOf(`${VALID}    ${line}\n`), field)).toMatchObject({ line: 9, column: 5, message, fix });
  });

  it('a relative path gets the absolute-path problem only', async () => {
    const problems = await problemsOf(`${VALID}    output_dir: out/../x:y\n`);
    expect(problems.map((p) => p.fix)).toEqual(['use an absolute path on the worker, e.g. /var/lib/farm/output']);
  });

  it('output_dir and storage may not overlap', async () => {
    const problems = await problemsOf(`${VALID}    output_dir: /var/lib/containers\n`);
    expect(only(problems, 'workers[0].output_dir')).toMatchObject({
      line: 9,
      message: 'output_dir /var/lib/containers and storage /var/lib/containers/storage overlap: bib would write disk images into container storage, and the farm removes outputs after each fetch',
      fix: 'give them separate directories, e.g. output_dir: /var/lib/farm/output',
    });
  });

  it('plain absolute paths load', async () => {
    const { inventory } = await loads(`${VALID}    storage: /srv/containers/storage\n    output_dir: /srv/farm-output\n    podman_socket: /run/podman/podman.sock\n`);
    expect(inventory.workers[0]).toMatchObject({ storage: '/srv/containers/storage', output_dir: '/srv/farm-output' });
  });
});

describe('SSH file names (OpenSSH expands %-tokens and ${VAR}, splits known_hosts at spaces)', () => {
  it('identity_file with % or ${ in a worker and a hypervisor', async () => {
    const text = hypervisor('qemu+ssh://root@hv/system', ', identity_file: "/keys/${HOME}/id"').replace('    host_key:', '    identity_file: /keys/100%/id\n    host_key:');
    const problems = await problemsOf(text);
    expect(only(problems, 'workers[0].identity_file')).toMatchObject({
      line: 8,
      message: "'/keys/100%/id' contains '%', which OpenSSH expands in identity file names (%h, %u, ${HOME}...): it would read another file",
      fix: "move or link the key to a path without '%' and '${'",
    });
    expect(only(problems, 'arches.x86_64.targets[0].hypervisors[0].identity_file').message).toMatch(/^'\/keys\/\$\{HOME\}\/id' contains '\$\{'/);
  });

  it('known_hosts with spaces, quotes or % in a worker and a hypervisor', async () => {
    const problems = await problemsOf(hypervisor('qemu+ssh://root@hv/system', ', known_hosts: "/k/\\"q\\"/kh"'));
    expect(only(problems, 'arches.x86_64.targets[0].hypervisors[0].known_hosts').message).toMatch(/contains a quote or backslash/);
    const worker = await problemsOf(`${VALID}    known_hosts: "/home/me/my hosts %d"\n`);
    expect(only(worker, 'workers[0].known_hosts')).toMatchObject({
      message: "'/home/me/my hosts %d' contains '%' and white space: OpenSSH expands '%' and '${' in known_hosts file names and splits them at spaces, so it would read other files",
      fix: "move or link the file to a plain path (no '%', '${', spaces, quotes or backslashes)",
    });
  });
});

describe('libvirt URIs: nothing that weakens host key checking, prompts, or does nothing', () => {
  const field = 'arches.x86_64.targets[0].hypervisors[0].uri';
  it.each([
    ['no_verify=1', /^no_verify turns SSH host key checking off$/],
    ['known_hosts_verify=ignore', /^known_hosts_verify=ignore asks libvirt to accept unknown or changed host keys/],
    ['known_hosts_verify=auto', /^known_hosts_verify=auto asks libvirt to accept unknown or changed host keys/],
    ['known_hosts=/tmp/kh', /^known_hosts= is read only by libvirt's libssh transports/],
    ['sshauth=password', /^sshauth= is read only/],
    ['no_tty=0', /^no_tty other than 1 lets ssh prompt/],
    ['keyfile=/keys/hv', /^keyfile= bypasses the identity file checks/],
    ['pkipath=/etc/pki', /^pkipath= does not apply to the qemu\+ssh connection/],
    ['ProxyCommand=x', /^unknown URI parameter 'ProxyCommand'/],
  ])('?%s is refused', async (param, message) => {
    const p = only(await problemsOf(hypervisor(`qemu+ssh://root@hv/system?${param}`)), field);
    expect(p.line).toBe(14);
    expect(p.message).toMatch(message);
  });

  it('each bad parameter and a password are reported at once; the fixes say what to do instead', async () => {
    const problems = await problemsOf(hypervisor('qemu+ssh://root:pw@hv/system?no_verify=1&keyfile=/keys/hv&x=1'));
    expect(problems.map((p) => p.fix)).toEqual([
      "remove ':' and the password from the URI",
      'remove no_verify from the URI; the farm verifies the host key against the known_hosts or host_key given for the hypervisor',
      'remove it and set identity_file: /keys/hv on this hypervisor',
      'remove it; qemu+ssh URIs take name, command, socket, netcat, no_sanity, mode, proxy',
    ]);
    expect(formatProblems(problems)).not.toContain('pw@');
  });

  it('the parameters libvirt’s ssh transport needs, and the farm’s own values, load', async () => {
    const uri = 'qemu+ssh://root@hv:2222/system?socket=/run/libvirt/libvirt-sock&mode=legacy&proxy=netcat&netcat=nc&name=qemu:///system&no_sanity=1&no_verify=0&no_tty=1&command=/opt/ssh/bin/ssh';
    await expect(loads(hypervisor(uri))).resolves.toBeDefined();
  });
});

describe('control characters: one rule over every string and key', () => {
  it('a NUL in host is a problem at the field, not a crash later', async () => {
    const problems = await problemsOf(VALID.replace('host: 10.231.0.11', 'host: "10.231.0.11\\0"'));
    expect(problems).toEqual([
      {
        file: expect.any(String),
        line: 6,
        column: 5,
        field: 'workers[0].host',
        message: 'this value contains U+0000 (NUL) at character 12',
        fix: 'remove the character; inventory values are plain text',
      },
    ]);
  });

  it('escape sequences, line breaks, C1 and bidi controls anywhere; messages never print them', async () => {
    const text = yml(`
      version: 1
      source: { containerfile: Containerfile, build_args: { "A\\u001b[31m": x } }
      settings: { builds_dir: ../builds }
      workers:
        - name: w
          host: h
          arch: x86_64
          host_key: "${KEY}"
          user: |
            root
            evil
      arches:
        x86_64:
          targets:
            - { kind: openstack, properties: { os_distro: "fedora\\u202e", note: "a\\u0085b" } }
    `);
    const problems = await problemsOf(text);
    expect(problems.map((p) => [p.line, p.field, p.message])).toEqual([
      [2, 'source.build_args["A\\u001b[31m"]', 'this key contains U+001B (escape) at character 2'],
      [9, 'workers[0].user', 'this value contains U+000A (line feed) at character 5'],
      [15, 'arches.x86_64.targets[0].properties.os_distro', 'this value contains U+202E (a bidirectional-text control) at character 7'],
      [15, 'arches.x86_64.targets[0].properties.note', 'this value contains U+0085 (a control character) at character 2'],
    ]);
    expect(problems[1]!.fix).toBe('write it on one line (a YAML block scalar, | or >, keeps its line breaks)');
    expect(formatProblems(problems)).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
  });

  it('other problems that quote the file (an unknown key) print its control characters escaped', async () => {
    const problems = await problemsOf(`${VALID}    "hostt\\u001b]0;pwned\\u0007\\u202e": x\n`);
    const unknown = problems.find((p) => p.message.startsWith('unknown key'))!;
    expect(unknown.message).toBe("unknown key 'hostt\\u{1b}]0;pwned\\u{7}\\u{202e}'");
    expect(formatProblems(problems)).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
  });

  it('a file full of them gets 50 problems and one that counts the rest', async () => {
    const list = Array.from({ length: 80 }, () => '"x\\t"').join(', ');
    const problems = await problemsOf(`${VALID}    max_builds: 1\nbuilder: { extra_args: [${list}] }\n`);
    expect(problems).toHaveLength(51);
    expect(problems.at(-1)).toMatchObject({ field: 'builder.extra_args[50]', message: 'this and 29 more strings after it contain control characters too' });
  });
});

describe('the build context', () => {
  it("a context of '/' is refused", async () => {
    const problems = await problemsOf(VALID.replace('source: { containerfile: Containerfile }', 'source: { containerfile: Containerfile, context: / }'));
    expect(only(problems, 'source.context')).toMatchObject({
      line: 2,
      message: "the build context is '/', the whole filesystem of this host: every build would send it to every worker",
    });
  });

  it('a context that contains the builds dir, as inventory/farm.yaml had it (context: .., builds_dir: ../builds)', async () => {
    const file = await writeInventory(VALID.replace('source: { containerfile: Containerfile }', 'source: { containerfile: ../Containerfile, context: .. }'));
    const problems = await loadInventory(file, { checkFiles: false }).catch((e: { problems: unknown }) => e.problems);
    const dir = join(file, '..');
    expect(problems).toEqual([
      expect.objectContaining({
        line: 3,
        field: 'settings.builds_dir',
        message: `the builds dir ${join(dir, '../builds')}, inside the build context ${join(dir, '..')}: earlier disk images and build records would be part of every build's context`,
        fix: 'set settings.builds_dir outside the context, e.g. builds_dir: /var/lib/farm/builds, or builds_dir: ../../farm-inventory-rules-' + dir.split('farm-inventory-rules-')[1]!.split('/')[0] + '-builds',
      }),
    ]);
  });

  it('the default builds dir (builds/ next to the inventory) inside the default context is refused too, pointing where to add builds_dir', async () => {
    const problems = await problemsOf(VALID.replace('settings: { builds_dir: ../builds }\n', ''));
    expect(problems).toEqual([
      expect.objectContaining({ line: 1, field: 'settings.builds_dir', message: expect.stringMatching(/^builds_dir is not set, so builds go to .*\/builds, inside the build context /) }),
    ]);
  });

  it('builds next to the context, or a context below the inventory, load', async () => {
    await expect(loads(VALID)).resolves.toBeDefined();
    await expect(loads(VALID.replace('settings: { builds_dir: ../builds }\n', '').replace('Containerfile }', 'Containerfile, context: src }'))).resolves.toBeDefined();
  });
});

describe('service.source.git', () => {
  const git = (fields: string) => `${VALID}service:\n  source:\n    git: { ${fields} }\n`;

  it.each([
    ['https://ghp_secretToken123@github.com/org/os.git', "no credentials in an https URL: this one carries a token or user name before '@'"],
    ['http://oauth2:glpat-secret@gitlab.example.org/os.git', 'no password in the URL: this one carries user:password@'],
    ['ssh://git:hunter2@git.example.org/os.git', 'no password in the URL: this one carries user:password@'],
  ])('%s is refused, the fix names a credential helper or an SSH key, and the secret is never shown', async (url, message) => {
    const problems = await problemsOf(git(`url: "${url}"`));
    const p = only(problems, 'service.source.git.url');
    expect(p.message).toMatch(new RegExp(`^${message.replace(/[()]/g, '\\$&')}`));
    expect(p.fix).toMatch(/git credential helper .* or use an SSH URL \(ssh:\/\/git@host\/repo or git@host:repo\) with a deploy key/);
    expect(formatProblems(problems)).not.toMatch(/secret|hunter2/);
  });

  it('ext:: and fd:: remote helpers are refused', async () => {
    const p = only(await problemsOf(git('url: "ext::sh -c touch% /tmp/x"')), 'service.source.git.url');
    expect(p.message).toBe('the ext:: remote helper runs a command instead of fetching a repository');
  });

  it('containerfile and context stay inside the repository', async () => {
    const problems = await problemsOf(git('url: "https://git.example.org/os.git", containerfile: /etc/passwd, context: ../..'));
    expect(only(problems, 'service.source.git.containerfile').message).toBe("'/etc/passwd' is not a path inside the repository");
    expect(only(problems, 'service.source.git.context').message).toBe("'../..' leaves the repository");
  });

  it('ssh://git@host, git@host:path, plain https and local paths load', async () => {
    for (const url of ['ssh://git@git.example.org/os.git', 'git@github.com:org/os.git', 'https://git.example.org/os.git', '/srv/git/os.git']) {
      await expect(loads(git(`url: "${url}", context: images/builder`))).resolves.toBeDefined();
    }
  });
});

describe('YAML limits: one problem with the line and the limit', () => {
  const where = { file: '/x/farm.yaml', dir: '/x' };
  const problemOf = (text: string) =>
    parseInventory(text, where, { checkFiles: false }).then(
      () => {
        throw new Error('expected the inventory to be refused');
      },
      (e: { problems: Array<{ line?: number; message: string; fix: string }> }) => {
        expect(e.problems).toHaveLength(1);
        return e.problems[0]!;
      },
    );

  it('a billion laughs', async () => {
    const laughs = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (const [i, name] of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].entries()) {
      const prev = String.fromCharCode('a'.charCodeAt(0) + i);
      laughs.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    const t0 = Date.now();
    const p = await problemOf(`version: 1\n${laughs.join('\n')}\n`);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(p).toMatchObject({ line: 3, message: `YAML aliases expand to more than ${MAX_ALIAS_EXPANSIONS} copies (aliases of aliases multiply): this is how a "billion laughs" file exhausts memory` });
  });

  it('deep flow nesting (no stack overflow, and fast)', async () => {
    const t0 = Date.now();
    const p = await problemOf(`version: 1\nx: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(p).toMatchObject({ line: 2, message: `YAML nesting deeper than ${MAX_DEPTH} levels of mappings and lists` });
    expect(p.message).not.toMatch(/call stack/);
  });

  it('deep block nesting', async () => {
    const lines = Array.from({ length: 300 }, (_, i) => `${' '.repeat(i)}k${i}:`);
    const p = await problemOf(`version: 1\n${lines.join('\n')} 1\n`);
    expect(p).toMatchObject({ line: MAX_DEPTH + 2, message: `YAML nesting deeper than ${MAX_DEPTH} levels of mappings and lists` });
  });

  it(`a file over ${MAX_INVENTORY_BYTES / 1024} KiB, read no further than the limit`, async () => {
    const big = `${VALID}# ${'x'.repeat(200)}\n`.repeat(Math.ceil((2 * MAX_INVENTORY_BYTES) / 400));
    const file = await writeInventory(big);
    const problems = await loadInventory(file).catch((e: { problems: Array<{ line?: number; message: string }> }) => e.problems);
    const line = big.slice(0, MAX_INVENTORY_BYTES).split('\n').length;
    expect(problems).toEqual([
      expect.objectContaining({ line, message: `the inventory is ${Math.round(big.length / 1024)} KiB; the farm reads inventories of at most 256 KiB (this line passes the limit)` }),
    ]);
  });

  it('what is not a regular file (a FIFO would block, a device never end)', async () => {
    const file = await writeInventory('');
    await rm(file);
    execFileSync('mkfifo', [file]);
    const problems = await loadInventory(file).catch((e: { problems: Array<{ message: string }> }) => e.problems);
    expect(problems).toEqual([expect.objectContaining({ message: 'the inventory is not a regular file' })]);
    const dir = join(file, '..', 'a-dir.yaml');
    await mkdir(dir);
    expect(await loadInventory(dir).catch((e: { problems: Array<{ message: string }> }) => e.problems[0]!.message)).toBe('the inventory is not a regular file');
  });

  it('inventories within the limits load as before: a merge key per worker is fine', async () => {
    const workers = Array.from({ length: 8 }, (_, i) => `  - { <<: *w, name: w${i}, host: h${i} }`).join('\n');
    const ok = yml(`
      version: 1
      source: { containerfile: Containerfile }
      settings: { builds_dir: ../builds }
      workers:
        - &w { name: base, host: h, arch: x86_64, host_key: "${KEY}" }
    `) + workers + '\n';
    const { inventory } = await loads(ok);
    expect(inventory.workers).toHaveLength(9);
  });
});
