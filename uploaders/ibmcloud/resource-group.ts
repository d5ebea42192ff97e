// The target names its resource group by name (or id); VPC wants the id. Resource Manager v2
// through @ibm-cloud/platform-services, authenticated with the same IamAuthenticator.

import ResourceManagerV2 from '@ibm-cloud/platform-services/resource-manager/v2.js';
import { FarmError } from '../../src/core/errors.ts';
import { serviceFault } from './errors.ts';

export interface ResourceGroupRef {
  id: string;
  name: string;
}

const GROUP_ID = /^[0-9a-f]{32}$/;

export async function resolveResourceGroup(rm: ResourceManagerV2, value: string): Promise<ResourceGroupRef> {
  const byName = (await rm.listResourceGroups({ name: value })).result.resources ?? [];
  const named = byName.find((g) => g.name === value && g.id);
  if (named?.id) return { id: named.id, name: value };
  if (GROUP_ID.test(value)) {
    try {
      const g = (await rm.getResourceGroup({ id: value })).result;
      if (g.id) return { id: g.id, name: g.name ?? value };
    } catch (err) {
      if (serviceFault(err).status !== 404) throw err;
    }
  }
  const all = ((await rm.listResourceGroups({})).result.resources ?? []).map((g) => g.name).filter(Boolean);
  throw new FarmError('UPLOAD', `IBM Cloud: resource group '${value}' not found in the account`, {
    hint: all.length > 0 ? `set resource_group to one of: ${all.join(', ')}` : 'create a resource group or fix resource_group in the target',
  });
}
