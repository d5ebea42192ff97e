import { describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import { libvirtTargetSchema } from '../../uploaders/libvirt/schema.ts';
import { createLibvirtUploader, hypervisorsFor, planUpload } from '../../uploaders/libvirt/index.ts';
import { checkVolumeName } from '../../uploaders/libvirt/hypervisor.ts';
import { classify, virshError } from '../../uploaders/libvirt/virsh.ts';

const target = libvirtTargetSchema.parse({
  kind: 'libvirt',
  hypervisors: [
    { uri: 'qemu+ssh://root@hv-x1/system', arch: 'x86_64' },
    { uri: 'qemu+ssh://root@hv-p1/system', arch: 'ppc64le' },
    { uri: 'qemu+ssh://root@hv-x2:2222/system', arch: 'x86_64' },
  ],
});

describe('hypervisor selection', () => {
  it('takes only the hypervisors of the artifact arch, in inventory order', () => {
    const { selected, skipped } = hypervisorsFor(target, 'x86_64');
    expect(selected.map((h) => h.uri)).toEqual(['qemu+ssh://root@hv-x1/system', 'qemu+ssh://root@hv-x2:2222/system']);
    expect(skipped.map((h) => h.arch)).toEqual(['ppc64le']);
    expect(hypervisorsFor(target, 'ppc64le').selected.map((h) => h.uri)).toEqual(['qemu+ssh://root@hv-p1/system']);
    expect(hypervisorsFor(target, 's390x').selected).toEqual([]);
  });

  it('upload refuses an arch no hypervisor runs, naming the target', async () => {
    const up = createLibvirtUploader(target);
    const artifact = {
      buildId: 'b',
      arch: 's390x' as const,
      type: 'qcow2' as const,
      imageName: 'img',
      disk: { path: '/nonexistent/disk.qcow2', name: 'qcow2/disk.qcow2', size: 1, sha256: '', format: 'qcow2' as const },
      extra: [],
      worker: 'w',
      builtAt: '',
    };
    const logs: string[] = [];
    await expect(up.upload(artifact, 'img', { signal: new AbortController().signal, log: (m) => logs.push(m), tags: {} })).rejects.toThrow(/no s390x hypervisor/);
    expect(logs.filter((l) => l.startsWith('skipping hypervisor'))).toHaveLength(3);
    expect(await up.find('img', artifact, new AbortController().signal)).toEqual([]);
  });
});

describe('upload plan', () => {
  const raw = { format: 'raw' as const, size: 4096, path: '/d/disk.raw' };
  const qcow2 = { format: 'qcow2' as const, size: 1000, path: '/d/disk.qcow2' };

  it('uploads a raw artifact as is', () => {
    expect(planUpload({ image_type: 'raw', convert_to_raw: true }, raw)).toEqual({ format: 'raw', convert: false, size: 4096 });
  });

  it('converts qcow2 to raw by default; the raw file is the virtual size', () => {
    expect(planUpload({ image_type: 'qcow2', convert_to_raw: true }, qcow2, 8192)).toEqual({ format: 'raw', convert: true, size: 8192 });
  });

  it('keeps qcow2 when convert_to_raw is false', () => {
    expect(planUpload({ image_type: 'qcow2', convert_to_raw: false }, qcow2)).toEqual({ format: 'qcow2', convert: false, size: 1000 });
  });

  it('refuses other disk formats', () => {
    expect(() => planUpload({ image_type: 'qcow2', convert_to_raw: false }, { format: 'vmdk', size: 1, path: '/d/x.vmdk' })).toThrow(FarmError);
  });
});

describe('volume names', () => {
  it('accepts what naming templates produce', () => {
    for (const n of ['copr-builder-x86_64-20261121_232900', 'farm-20261121-232900-ppc64le', 'a.b+c']) expect(() => checkVolumeName(n)).not.toThrow();
  });
  it('refuses paths, options and empty names', () => {
    for (const n of ['', '-rf', '--pool=x', '/var/lib/libvirt/images/x', 'a/b', '.hidden', 'a b', 'x\n']) expect(() => checkVolumeName(n)).toThrow(FarmError);
  });
});

describe('virsh errors', () => {
  it('tells host key refusals from login and reachability problems', () => {
    expect(classify('error: Cannot recv data: Host key verification failed.: Connection reset by peer').code).toBe('HOST_KEY');
    expect(classify('No ED25519 host key is known for 10.231.0.21 and you have requested strict checking.').code).toBe('HOST_KEY');
    expect(classify('root@hv: Permission denied (publickey).').code).toBe('SSH');
    expect(classify('ssh: connect to host hv port 22: Connection refused').code).toBe('SSH');
    expect(classify('error: Storage volume not found').code).toBe('UPLOAD');
  });
  it('joins the error lines without the generic connect line', () => {
    expect(virshError('error: failed to connect to the hypervisor\nerror: Cannot recv data: Host key verification failed.\n')).toBe(
      'Cannot recv data: Host key verification failed.',
    );
  });
});
