// The fake's Microsoft.Compute: managed images and gallery image versions made from a page blob
// VHD, as long-running operations polled through Azure-AsyncOperation. It refuses what Azure
// refuses: a source blob that is not there (it asks the Blob service, as Azure does when it
// copies the VHD), not a page blob, not a fixed VHD, a virtual size that is not a whole MiB, an
// architecture or generation the definition does not have, and a name that is taken.

import { randomUUID } from 'node:crypto';

export interface BlobFacts {
  /** undefined: no such blob. */
  size?: number;
  blobType?: string;
  /** The last 512 bytes. */
  footer?: Buffer;
}

/** Reads a blob's facts from the Blob service (the fake's shared-key client). */
export type BlobProbe = (uri: string) => Promise<BlobFacts>;

export interface FakeResource {
  id: string;
  name: string;
  type: string;
  location: string;
  tags: Record<string, string>;
  properties: Record<string, unknown>;
}

export interface FakeOperation {
  id: string;
  location: string;
  polls: number;
  /** What finishing does; returns an error to fail the operation with. */
  finish: () => Promise<{ code: string; message: string } | undefined>;
  status: 'InProgress' | 'Succeeded' | 'Failed';
  error?: { code: string; message: string };
  startTime: string;
  endTime?: string;
}

export class ArmError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly target?: string,
  ) {
    super(message);
  }
}

const MIB = 1024 * 1024;

/** Azure's check of a VHD blob (Microsoft.Compute's messages, shortened). */
export function vhdRefusal(uri: string, facts: BlobFacts): { code: string; message: string } | undefined {
  if (facts.size === undefined) return { code: 'InvalidParameter', message: `The blob ${uri} does not exist or cannot be read.` };
  if (facts.blobType !== 'PageBlob') return { code: 'InvalidParameter', message: `The blob ${uri} is a ${facts.blobType ?? 'unknown'} blob; disks are page blobs.` };
  const footer = facts.footer;
  if (!footer || footer.toString('latin1', 0, 8) !== 'conectix') {
    return { code: 'InvalidVhd', message: `The specified cookie value in VHD footer indicates that the blob ${uri} is not a supported VHD. Disk is expected to have cookie value 'conectix'.` };
  }
  if (footer.readUInt32BE(60) !== 2) return { code: 'InvalidVhd', message: `The blob ${uri} is a dynamic or differencing VHD. Only fixed VHDs are supported.` };
  const virtual = facts.size - 512;
  if (virtual % MIB !== 0) {
    return { code: 'InvalidVhd', message: `The blob ${uri} has an unsupported virtual size of ${virtual} bytes. The size must be a whole number (in MBs).` };
  }
  if (Number(footer.readBigUInt64BE(48)) !== virtual) {
    return { code: 'InvalidVhd', message: `The VHD footer of ${uri} gives a current size that differs from the blob's size less the footer.` };
  }
  return undefined;
}

export function newOperation(location: string, finish: FakeOperation['finish']): FakeOperation {
  return { id: randomUUID(), location, polls: 0, finish, status: 'InProgress', startTime: new Date().toISOString() };
}
