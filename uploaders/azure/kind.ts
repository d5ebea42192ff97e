// The azure target kind: a managed image or a Compute Gallery image version in one location,
// from bib's vhd (a fixed VHD whose size is a whole MiB), staged as a page blob.

import type { KindCheckContext, KindProblem, NameRule, TargetKind } from '../kind.ts';
import { lazyUploader, nameRuleProblems } from '../kind.ts';
import { AZURE_ARCHES } from './arch.ts';
import { IMAGE_NAME_ALLOWED, imageNameProblem } from './names.ts';
import { azureTargetSchema, type AzureTarget } from './schema.ts';

const MANAGED_IMAGE_NAMES: NameRule = { what: 'Azure managed image', problem: imageNameProblem, allowed: IMAGE_NAME_ALLOWED };
// Tag values carry the farm's image name on gallery versions (their own names are versions).
const TAG_VALUE_MAX = 256;

function check(target: AzureTarget, ctx: KindCheckContext): KindProblem[] {
  const out: KindProblem[] = [];
  if (ctx.arch === 'aarch64' && !target.gallery) {
    out.push({
      path: ['gallery'],
      message: 'Azure makes Arm64 VMs from Compute Gallery images only, not from managed images',
      fix: 'add gallery: { name: <gallery>, image: <an Arm64, V2 image definition> } to this target',
    });
  }
  // A managed image is named after the farm's image; a gallery version is named by build time and
  // carries the farm's name in a tag.
  if (!target.gallery) out.push(...nameRuleProblems(MANAGED_IMAGE_NAMES, ctx));
  else {
    const long = ctx.names.find((n) => n.imageName.length > TAG_VALUE_MAX);
    if (long) out.push({ path: ctx.naming?.own ? ['naming'] : [], message: `the image name '${long.imageName}' is longer than an Azure tag value (${TAG_VALUE_MAX})`, fix: 'use a shorter naming template' });
  }
  for (const [key, value] of Object.entries(target.tags)) {
    if (key.length > 512 || /[<>%&\\?/]/.test(key)) out.push({ path: ['tags', key], message: `Azure tag names have at most 512 characters and none of < > % & \\ ? /`, fix: 'rename the tag' });
    if (value.length > TAG_VALUE_MAX) out.push({ path: ['tags', key], message: `Azure tag values have at most ${TAG_VALUE_MAX} characters`, fix: 'shorten the value' });
  }
  return out;
}

export const azure: TargetKind<AzureTarget> = {
  kind: 'azure',
  schema: azureTargetSchema,
  arches: AZURE_ARCHES,
  archNote: 'Azure images are x64 or Arm64',
  aliases: ['az', 'microsoft', 'vhd'],
  hints: { subscription_id: '<subscription GUID>', resource_group: '<resource group>', location: '<location, e.g. eastus>', storage_account: '<storage account for the staging blob>' },
  credentials:
    'Azure credentials come from DefaultAzureCredential: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or a certificate), a managed or workload identity, or `az login`',
  imageType: () => 'vhd',
  check,
  create: (target, { env }) => lazyUploader(target.name, 'azure', async () => (await import('./index.ts')).createAzureUploader(target, { env })),
};
