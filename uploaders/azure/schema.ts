// The inventory's azure target: where the staging page blob goes (a storage account's container)
// and what is made from it (a managed image in a resource group, or a version of a Compute
// Gallery image definition). Strict, so a typo is an error instead of a silently ignored setting.

import { z } from 'zod';
import { nonEmpty } from '../../src/core/fields.ts';
import { TARGET_FIELDS } from '../kind.ts';

const uuid = z.string().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'an Azure subscription id is a GUID');
// Azure's rules: resource groups 1-90 of letters, digits, _ . - ( ), not ending in '.'.
const resourceGroup = z
  .string()
  .regex(/^[A-Za-z0-9_.()-]{0,89}[A-Za-z0-9_()-]$/, 'a resource group name has 1-90 letters, digits, "_", ".", "-", "(" or ")" and does not end with "."');
const storageAccount = z.string().regex(/^[a-z0-9]{3,24}$/, 'a storage account name is 3-24 lower-case letters and digits');
const container = z
  .string()
  .regex(/^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/, 'a container name is 3-63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit');
const location = z.string().regex(/^[a-z0-9]+$/, 'an Azure location is its short name, e.g. eastus or westeurope');
const galleryName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._]{0,78}[A-Za-z0-9]$|^[A-Za-z0-9]$/, 'a gallery name is 1-80 letters, digits, "." and "_", starting and ending with a letter or digit');
const httpsUrl = z.url({ protocol: /^https$/, error: 'use an https:// URL (Azure SDKs send bearer tokens over TLS only)' });

export const azureTargetSchema = z
  .object({
    kind: z.literal('azure'),
    ...TARGET_FIELDS,
    subscription_id: uuid.describe('Azure subscription of the resource group'),
    resource_group: resourceGroup.describe('Resource group the managed image (or the gallery) lives in'),
    location: location.describe('Azure location of the image, e.g. eastus'),
    storage_account: storageAccount.describe('Storage account for the staging page blob, in the same location'),
    storage_resource_group: resourceGroup.optional().describe("The storage account's resource group (default: resource_group)"),
    container: container.default('farm-staging').describe('Blob container for the staging page blob (must exist)'),
    gallery: z
      .object({
        name: galleryName.describe('Compute Gallery name (in resource_group)'),
        image: nonEmpty.describe('Gallery image definition; its architecture must be the build\'s and its generation V2'),
        target_regions: z.array(location).default([]).describe('Regions to replicate the version to besides location'),
      })
      .strict()
      .optional()
      .describe('Make a gallery image version instead of a managed image (Arm64 builds need this)'),
    tags: z.record(z.string(), z.string()).default({}).describe('Tags on the image'),
    blob_endpoint: httpsUrl.optional().describe('Blob service URL (default https://<storage_account>.blob.core.windows.net)'),
    arm_endpoint: httpsUrl.optional().describe('Resource Manager URL (default https://management.azure.com)'),
  })
  .strict();

export type AzureTarget = z.infer<typeof azureTargetSchema>;
