// The ibmcloud target kind: VPC custom images (x86_64 and s390x) from bib's qcow2, staged in COS.

import type { TargetKind } from '../kind.ts';
import { lazyUploader } from '../kind.ts';
import { VPC_NAME_ALLOWED, imageNameProblem, vpcImageName } from './names.ts';
import { ibmcloudTargetSchema, type IbmCloudTarget } from './schema.ts';

export const ibmcloud: TargetKind<IbmCloudTarget> = {
  kind: 'ibmcloud',
  schema: ibmcloudTargetSchema,
  arches: ['x86_64', 's390x'],
  archNote: 'IBM Cloud VPC custom images exist for x86_64 and s390x only',
  aliases: ['ibm', 'vpc'],
  hints: {
    regions: '[<region>, ...], e.g. [us-east, eu-de]',
    resource_group: '<resource group id>',
    operating_system: '<VPC operating-system name, e.g. red-9-s390x-byol>',
    cos: '{ bucket: <bucket>, region: <region> }',
  },
  credentials: 'IBM Cloud credentials come from the environment (IBMCLOUD_API_KEY)',
  imageType: () => 'qcow2',
  names: { what: 'IBM Cloud VPC image', toTarget: vpcImageName, problem: imageNameProblem, allowed: VPC_NAME_ALLOWED },
  check: () => [],
  create: (target, { env }) => lazyUploader(target.name, 'ibmcloud', async () => (await import('./index.ts')).createIbmCloudUploader(target, { env })),
};
