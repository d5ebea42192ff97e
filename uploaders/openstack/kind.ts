// The openstack target kind: Glance images of any arch, from bib's qcow2 or raw.

import { ARCHES } from '../../src/core/arch.ts';
import type { TargetKind } from '../kind.ts';
import { lazyUploader } from '../kind.ts';
import { GLANCE_NAME_ALLOWED, glanceNameProblem } from './names.ts';
import { openstackTargetSchema, type OpenStackTarget } from './schema.ts';

export const openstack: TargetKind<OpenStackTarget> = {
  kind: 'openstack',
  schema: openstackTargetSchema,
  arches: ARCHES,
  aliases: ['glance'],
  credentials:
    'OpenStack credentials come from clouds.yaml/secure.yaml (the entry named by cloud: or OS_CLOUD) or OS_* variables such as OS_PASSWORD',
  imageType: (target) => target.image_type,
  names: { what: 'Glance image', problem: glanceNameProblem, allowed: GLANCE_NAME_ALLOWED },
  check: () => [],
  create: (target, { env }) => lazyUploader(target.name, 'openstack', async () => (await import('./index.ts')).createOpenStackUploader(target, { env })),
};
