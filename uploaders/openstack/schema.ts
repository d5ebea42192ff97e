// An openstack target in the inventory: Glance images in the cloud clouds.yaml or OS_* name.

import { z } from 'zod';
import { nonEmpty } from '../../src/core/fields.ts';
import { TARGET_FIELDS } from '../kind.ts';

export const openstackTargetSchema = z
  .object({
    kind: z.literal('openstack'),
    ...TARGET_FIELDS,
    cloud: nonEmpty.optional().describe('clouds.yaml entry (default: OS_CLOUD, then OS_* variables)'),
    image_type: z.enum(['qcow2', 'raw']).default('qcow2'),
    disk_format: z.enum(['qcow2', 'raw']).optional().describe('Glance disk_format (default: image_type)'),
    visibility: z.enum(['private', 'shared', 'community', 'public']).default('private'),
    properties: z.record(z.string(), z.string()).default({}),
    os_distro: nonEmpty.optional(),
  })
  .strict();

export type OpenStackTarget = z.infer<typeof openstackTargetSchema>;
