// What an IBM Cloud upload creates, removed by what the journal recorded of it: the COS staging
// object and its multipart uploads (by bucket and key), and VPC images (by id, else by name,
// which VPC keeps unique per region). An available image is complete and stays for find() and
// upload(), which reuse it; a pending or failed one is deleted (it would read an object that goes).

import { serviceFault, stepError } from './errors.ts';
import type { HalfMade, HalfMadeResult } from '../uploader.ts';
import { abortMultipartUploads, deleteObject } from '../s3-leftovers.ts';
import type { Session } from './session.ts';
import type { VpcImage } from './vpc-client.ts';
import { removeImage } from './images.ts';
import type { PollSettings } from '../../src/core/poll.ts';

export const VPC_IMAGE = 'vpc-image';
export const COS_OBJECT = 'cos-object';
export const COS_MULTIPART = 'cos-multipart';

// Images first: a pending import still reads the object.
const ORDER = [VPC_IMAGE, COS_MULTIPART, COS_OBJECT];

async function imagesOf(s: Session, o: HalfMade, signal: AbortSignal): Promise<VpcImage[]> {
  if (!o.id) return (await s.vpc(o.location).findImages(o.name, signal)).filter((img) => img.name === o.name);
  try {
    return [await s.vpc(o.location).getImage(o.id, signal)];
  } catch (err) {
    if (serviceFault(err).status === 404) return [];
    throw err;
  }
}

/** Removes one recorded object, or finds it complete (an available image) or gone. */
export async function removeIbmObject(
  s: Session,
  o: HalfMade,
  poll: PollSettings,
  signal: AbortSignal,
): Promise<'removed' | 'gone' | 'complete'> {
  switch (o.kind) {
    case VPC_IMAGE: {
      const images = await imagesOf(s, o, signal);
      if (images.length === 0) return 'gone';
      if (images.every((img) => img.status === 'available')) return 'complete';
      for (const img of images) if (img.status !== 'available') await removeImage(s.vpc(o.location), img.id, poll, signal);
      return 'removed';
    }
    case COS_MULTIPART:
      return (await abortMultipartUploads(s.cos, o.location, o.name, signal)) > 0 ? 'removed' : 'gone';
    case COS_OBJECT:
      await deleteObject(s.cos, o.location, o.name, signal);
      return 'removed';
    default:
      throw new Error(`not an object the ibmcloud uploader makes (${o.kind})`);
  }
}

export async function removeIbmLeftovers(s: Session, objects: readonly HalfMade[], poll: PollSettings, signal: AbortSignal): Promise<HalfMadeResult[]> {
  const results = new Map<HalfMade, HalfMadeResult>();
  for (const o of [...objects].sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind))) {
    try {
      results.set(o, { object: o, outcome: await removeIbmObject(s, o, poll, signal) });
    } catch (err) {
      const region = o.kind === VPC_IMAGE ? o.location : undefined;
      results.set(o, { object: o, error: stepError(`remove ${o.kind} ${o.name}`, region, err, s.secrets).message });
    }
  }
  return objects.map((o) => results.get(o)!);
}
