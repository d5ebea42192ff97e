// A libvirt target in the inventory: volumes in a storage pool on hypervisors reached over SSH.

import { z } from 'zod';
import { archSchema, hostKeyField, identityFileField, knownHostsField, nonEmpty, ruled } from '../../src/core/fields.ts';
import { TARGET_FIELDS } from '../kind.ts';
import { hypervisorUriProblems } from './uri.ts';

const hypervisorUri = ruled(z.string().regex(/^qemu\+ssh:\/\//, 'use a qemu+ssh://user@host/system URI'), (uri) =>
  /^qemu\+ssh:\/\//.test(uri) ? hypervisorUriProblems(uri).map(({ message, fix }) => ({ message, fix })) : undefined,
);

export const libvirtTargetSchema = z
  .object({
    kind: z.literal('libvirt'),
    ...TARGET_FIELDS,
    hypervisors: z
      .array(
        z
          .object({
            uri: hypervisorUri,
            arch: archSchema.describe('Arch of the hypervisor: it runs guests of this arch only'),
            identity_file: identityFileField.optional(),
            known_hosts: knownHostsField.optional(),
            host_key: hostKeyField.optional(),
          })
          .strict(),
      )
      .min(1),
    pool: nonEmpty.default('images').describe('libvirt storage pool'),
    image_type: z.enum(['qcow2', 'raw']).default('qcow2').describe('Which bib output to upload'),
    convert_to_raw: z.boolean().default(true).describe('Convert qcow2 to sparse raw before upload'),
  })
  .strict();

export type LibvirtTarget = z.infer<typeof libvirtTargetSchema>;
