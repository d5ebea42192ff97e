// An ibmcloud target in the inventory: VPC custom images in one or more regions, staged in COS.

import { z } from 'zod';
import { nonEmpty } from '../../src/core/fields.ts';
import { TARGET_FIELDS } from '../kind.ts';

export const ibmcloudTargetSchema = z
  .object({
    kind: z.literal('ibmcloud'),
    ...TARGET_FIELDS,
    regions: z.array(nonEmpty).min(1).describe('VPC regions to create the image in, e.g. [us-east, eu-de]'),
    resource_group: nonEmpty.describe('Resource group id (or name) for the images'),
    operating_system: nonEmpty.describe('VPC operating-system name, e.g. red-9-s390x-byol'),
    cos: z
      .object({ bucket: nonEmpty, region: nonEmpty, endpoint: nonEmpty.optional(), instance_crn: nonEmpty.optional() })
      .strict()
      .describe('Cloud Object Storage bucket the qcow2 is staged in'),
    endpoints: z
      .object({ iam: nonEmpty.optional(), vpc: nonEmpty.optional(), resource_manager: nonEmpty.optional(), tagging: nonEmpty.optional() })
      .strict()
      .optional(),
  })
  .strict();

export type IbmCloudTarget = z.infer<typeof ibmcloudTargetSchema>;
