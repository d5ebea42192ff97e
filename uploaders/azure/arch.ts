// Azure's architecture names for the farm's arches: from the build, never from this host.

import type { Arch } from '../../src/core/arch.ts';
import { FarmError } from '../../src/core/errors.ts';

export const AZURE_ARCHES = ['x86_64', 'aarch64'] as const satisfies readonly Arch[];

/** Architecture values of Microsoft.Compute (gallery image definitions). */
export const AZURE_ARCH: Partial<Record<Arch, 'x64' | 'Arm64'>> = { x86_64: 'x64', aarch64: 'Arm64' };

/** The build's Azure architecture; Arm64 images exist only as gallery image versions. */
export function azureArchitecture(arch: Arch, gallery: boolean): 'x64' | 'Arm64' {
  const a = AZURE_ARCH[arch];
  if (!a) {
    throw new FarmError('UPLOAD', `Azure has no ${arch} images`, { hint: 'Only x86_64 and aarch64 builds can go to an azure target.' });
  }
  if (a === 'Arm64' && !gallery) {
    throw new FarmError('UPLOAD', 'Azure makes Arm64 VMs from Compute Gallery images only, not from managed images', {
      hint: 'Set gallery: { name, image } on this azure target, with an Arm64 image definition.',
    });
  }
  return a;
}
