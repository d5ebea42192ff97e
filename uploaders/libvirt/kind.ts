// The libvirt target kind: volumes of any arch in a storage pool on hypervisors of that arch.

import { ARCHES, type Arch } from '../../src/core/arch.ts';
import type { KindProblem, TargetKind } from '../kind.ts';
import { lazyUploader } from '../kind.ts';
import { VOLUME_NAME_ALLOWED, volumeNameProblem } from './names.ts';
import { libvirtTargetSchema, type LibvirtTarget } from './schema.ts';

/** Hypervisors of another arch than the target's section, and a hypervisor listed twice. */
function checkHypervisors(target: LibvirtTarget, arch: Arch): KindProblem[] {
  const out: KindProblem[] = [];
  const uris = new Map<string, number>();
  target.hypervisors.forEach((hv, j) => {
    if (hv.arch !== arch) {
      out.push({
        path: ['hypervisors', j, 'arch'],
        message: `hypervisor arch ${hv.arch} differs from this section's arch ${arch}: a hypervisor runs guests of its own arch only`,
        fix: `move this hypervisor to a libvirt target under arches.${hv.arch}, or correct its arch`,
      });
    }
    const first = uris.get(hv.uri);
    if (first === undefined) uris.set(hv.uri, j);
    else out.push({ path: ['hypervisors', j, 'uri'], message: `hypervisor ${hv.uri} is listed twice (hypervisors[${first}] too)`, fix: 'delete one of them' });
  });
  return out;
}

export const libvirt: TargetKind<LibvirtTarget> = {
  kind: 'libvirt',
  schema: libvirtTargetSchema,
  arches: ARCHES,
  aliases: ['kvm', 'qemu', 'virsh'],
  hints: { hypervisors: '[{ uri: qemu+ssh://user@host/system, arch: <arch> }]', uri: 'qemu+ssh://user@host/system' },
  credentials: 'hypervisors authenticate with an SSH key instead: set identity_file (a key file, chmod 600) or load the key into ssh-agent (SSH_AUTH_SOCK)',
  imageType: (target) => target.image_type,
  names: { what: 'libvirt volume', problem: volumeNameProblem, allowed: VOLUME_NAME_ALLOWED },
  check: (target, ctx) => checkHypervisors(target, ctx.arch),
  sshEndpoints: (target) => target.hypervisors.map((files, j) => ({ path: ['hypervisors', j], files })),
  create: (target) => lazyUploader(target.name, 'libvirt', async () => (await import('./index.ts')).createLibvirtUploader(target, { name: target.name })),
};
