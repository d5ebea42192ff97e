// Resource Manager calls through @azure/arm-compute: managed images and Compute Gallery image
// versions made from a page blob VHD. Creates and deletes are long-running operations; the SDK
// polls them (Azure-AsyncOperation) every `pollMs` or as the service's Retry-After says.

import type { TokenCredential } from '@azure/identity';
import { ComputeManagementClient, type GalleryImage, type GalleryImageVersion, type Image } from '@azure/arm-compute';

export const DEFAULT_ARM_ENDPOINT = 'https://management.azure.com';

export interface ArmSettings {
  subscriptionId: string;
  credential: TokenCredential;
  endpoint?: string;
  /** Polling interval of long-running operations in ms (default 5000). */
  pollMs?: number;
}

/** True for ARM's "not there" answers (the SDK's RestError carries the HTTP status). */
export function isNotFound(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 404;
}

export class Arm {
  readonly client: ComputeManagementClient;
  private readonly pollMs: number;

  constructor(s: ArmSettings) {
    const endpoint = s.endpoint ?? DEFAULT_ARM_ENDPOINT;
    this.client = new ComputeManagementClient(s.credential, s.subscriptionId, {
      endpoint,
      // The token's audience is the Resource Manager the client talks to.
      credentialScopes: [`${endpoint.replace(/\/+$/, '')}/.default`],
    });
    this.pollMs = s.pollMs ?? 5000;
  }

  private lro(signal: AbortSignal) {
    return { abortSignal: signal, updateIntervalInMs: this.pollMs };
  }

  async getImage(rg: string, name: string, signal: AbortSignal): Promise<Image | undefined> {
    try {
      return await this.client.images.get(rg, name, { abortSignal: signal });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async listImages(rg: string, signal: AbortSignal): Promise<Image[]> {
    const out: Image[] = [];
    for await (const img of this.client.images.listByResourceGroup(rg, { abortSignal: signal })) out.push(img);
    return out;
  }

  createImage(rg: string, name: string, image: Image, signal: AbortSignal): Promise<Image> {
    return this.client.images.beginCreateOrUpdateAndWait(rg, name, image, this.lro(signal));
  }

  async deleteImage(rg: string, name: string, signal: AbortSignal): Promise<void> {
    try {
      await this.client.images.beginDeleteAndWait(rg, name, this.lro(signal));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  getGalleryImage(rg: string, gallery: string, image: string, signal: AbortSignal): Promise<GalleryImage> {
    return this.client.galleryImages.get(rg, gallery, image, { abortSignal: signal });
  }

  async listVersions(rg: string, gallery: string, image: string, signal: AbortSignal): Promise<GalleryImageVersion[]> {
    const out: GalleryImageVersion[] = [];
    for await (const v of this.client.galleryImageVersions.listByGalleryImage(rg, gallery, image, { abortSignal: signal })) out.push(v);
    return out;
  }

  async getVersion(rg: string, gallery: string, image: string, version: string, signal: AbortSignal): Promise<GalleryImageVersion | undefined> {
    try {
      return await this.client.galleryImageVersions.get(rg, gallery, image, version, { abortSignal: signal });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  createVersion(rg: string, gallery: string, image: string, version: string, body: GalleryImageVersion, signal: AbortSignal): Promise<GalleryImageVersion> {
    return this.client.galleryImageVersions.beginCreateOrUpdateAndWait(rg, gallery, image, version, body, this.lro(signal));
  }

  async deleteVersion(rg: string, gallery: string, image: string, version: string, signal: AbortSignal): Promise<void> {
    try {
      await this.client.galleryImageVersions.beginDeleteAndWait(rg, gallery, image, version, this.lro(signal));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
