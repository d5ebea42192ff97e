// Where each IBM Cloud service lives. Pure functions, unit-tested (the names VPC accepts: names.ts).

import { FarmError } from '../../src/core/errors.ts';

export const DEFAULT_IAM_URL = 'https://iam.cloud.ibm.com';
export const DEFAULT_RESOURCE_MANAGER_URL = 'https://resource-controller.cloud.ibm.com';
/** VPC is regional: one endpoint per region, https://<region>.iaas.cloud.ibm.com/v1. */
export const DEFAULT_VPC_TEMPLATE = 'https://{region}.iaas.cloud.ibm.com/v1';

// Region names go into host names and paths: keep them to what IBM uses (us-south, eu-de, us).
const REGION = /^[a-z]{2}(-[a-z]+)?$/;

export function checkRegion(region: string, what: string): void {
  if (!REGION.test(region)) {
    throw new FarmError('UPLOAD', `invalid ${what} '${region}'`, { hint: 'use an IBM Cloud region name such as us-south, us-east, eu-de or jp-tok' });
  }
}

/**
 * The VPC API base URL for a region. `template` (target.endpoints.vpc) may contain {region}; a
 * template without it names one endpoint and so serves a single-region target only.
 */
export function vpcServiceUrl(template: string | undefined, region: string, regionCount = 1): string {
  checkRegion(region, 'VPC region');
  const t = (template ?? DEFAULT_VPC_TEMPLATE).trim().replace(/\/+$/, '');
  if (!t.includes('{region}') && regionCount > 1) {
    throw new FarmError('UPLOAD', `endpoints.vpc '${t}' has no {region} but the target has ${regionCount} regions`, {
      hint: 'write it as a template, e.g. https://{region}.iaas.cloud.ibm.com/v1',
    });
  }
  const url = t.replaceAll('{region}', region);
  try {
    new URL(url);
  } catch {
    throw new FarmError('UPLOAD', `endpoints.vpc gives an invalid URL for ${region}: ${url}`, { hint: 'use e.g. https://{region}.iaas.cloud.ibm.com/v1' });
  }
  // The API lives under /v1; accept a bare host as users often write it.
  return /\/v1$/.test(url) ? url : `${url}/v1`;
}

/** COS's S3-compatible public endpoint for a bucket region (regional or cross-region: us, eu, ap). */
export function cosEndpoint(region: string, override?: string): string {
  if (override) return override.trim().replace(/\/+$/, '');
  checkRegion(region, 'COS region');
  return `https://s3.${region}.cloud-object-storage.appdomain.cloud`;
}

/** The file.href VPC imports from. The bucket's region is part of it, so one object serves every VPC region. */
export function cosHref(cosRegion: string, bucket: string, key: string): string {
  return `cos://${cosRegion}/${bucket}/${key}`;
}

/** The staging object for an image: VPC takes the format from the extension (.qcow2 or .vhd). */
export function objectKey(imageName: string): string {
  return `${imageName}.qcow2`;
}
