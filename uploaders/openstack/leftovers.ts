// Glance images a killed upload left: found by id when the journal has it, else by name and the
// attempt's farm_attempt property (the id is only known once Glance answered the create). An
// active image is complete and left for find(); any other (queued, saving, killed) is deleted.

import { errorMessage } from '../../src/core/errors.ts';
import type { HalfMade, HalfMadeResult } from '../uploader.ts';
import type { Glance, GlanceImage } from './glance.ts';
import { OpenStackHttpError } from './http.ts';

export const GLANCE_IMAGE = 'glance-image';
/** The property that carries the attempt token (ctx.tags' farm-attempt, as imageFields maps it). */
export const ATTEMPT_PROPERTY = 'farm_attempt';

async function lookup(glance: Glance, projectId: string, o: HalfMade, signal: AbortSignal): Promise<GlanceImage[]> {
  if (o.id) {
    try {
      return [await glance.get(o.id, signal)];
    } catch (err) {
      if (err instanceof OpenStackHttpError && err.status === 404) return [];
      throw err;
    }
  }
  const named = await glance.list({ name: o.name, owner: projectId }, signal);
  return named.filter((img) => img[ATTEMPT_PROPERTY] === o.attempt);
}

export async function removeGlanceLeftover(
  glance: Glance,
  projectId: string,
  o: HalfMade,
  signal: AbortSignal,
  redact: (s: string) => string,
): Promise<HalfMadeResult> {
  if (o.kind !== GLANCE_IMAGE) return { object: o, error: `not an object the openstack uploader makes (${o.kind})` };
  try {
    const images = await lookup(glance, projectId, o, signal);
    if (images.length === 0) return { object: o, outcome: 'gone' };
    if (images.every((img) => img.status === 'active')) return { object: o, outcome: 'complete' };
    for (const img of images) if (img.status !== 'active') await glance.remove(img.id, signal);
    return { object: o, outcome: 'removed' };
  } catch (err) {
    return { object: o, error: redact(errorMessage(err)) };
  }
}
