// One uploader per target kind, behind the Uploader interface.

import type { Target } from '../src/inventory/schema.ts';
import type { Uploader } from './uploader.ts';
import { createAwsUploader } from './aws/index.ts';
import { createIbmCloudUploader } from './ibmcloud/index.ts';
import { createLibvirtUploader } from './libvirt/index.ts';
import { createOpenStackUploader } from './openstack/index.ts';


export function createUploader(target: Target, name: string, env: NodeJS.ProcessEnv = process.env): Uploader {
  switch (target.kind) {
    case 'aws':
      return createAwsUploader({ ...target, name });
    case 'ibmcloud':
      return createIbmCloudUploader({ ...target, name }, { env });
    case 'libvirt':
      return createLibvirtUploader(target, { name });
    case 'openstack':
      return createOpenStackUploader({ ...target, name }, { env });
  }
}
