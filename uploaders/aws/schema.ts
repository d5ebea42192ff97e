// An aws target in the inventory: one region, AMIs from bib's ami disk.

import { z } from 'zod';
import type { Arch } from '../../src/core/arch.ts';
import { nonEmpty } from '../../src/core/fields.ts';
import { TARGET_FIELDS } from '../kind.ts';

export const awsTargetSchema = z
  .object({
    kind: z.literal('aws'),
    ...TARGET_FIELDS,
    region: nonEmpty.describe('AWS region, e.g. us-east-1'),
    method: z.enum(['ebs-direct', 's3-import']).default('ebs-direct'),
    bucket: nonEmpty.optional().describe('S3 bucket, required by method s3-import'),
    boot_mode: z.enum(['uefi-preferred', 'uefi', 'legacy-bios']).default('uefi-preferred'),
    imds_v2: z.boolean().default(false),
    copy_regions: z.array(nonEmpty).default([]),
    share_accounts: z.array(z.string().regex(/^\d{12}$/, 'an AWS account id is 12 digits')).default([]),
    deprecate_after_days: z.number().int().positive().optional(),
    tags: z.record(z.string(), z.string()).default({}),
    endpoint: nonEmpty.optional().describe('Override the service endpoint (tests, private endpoints)'),
  })
  .strict();

export type AwsTarget = z.infer<typeof awsTargetSchema>;

/** AWS RegisterImage's Architecture values: the arch comes from the build, never from this host. */
export const AWS_ARCH: Partial<Record<Arch, string>> = { x86_64: 'x86_64', aarch64: 'arm64' };
