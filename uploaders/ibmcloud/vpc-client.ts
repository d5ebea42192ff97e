// The VPC image API through ibm-cloud-sdk-core's BaseService (IBM's VPC SDK is not on npm): the
// same request path as the generated SDKs, so IAM tokens, retries on 429/5xx and error parsing
// come from the SDK core. Only the calls the uploader needs.

import { BaseService, type Authenticator } from 'ibm-cloud-sdk-core';

/** API version date sent with every call (VPC requires one; behaviour is pinned to it). */
export const VPC_API_VERSION = '2025-04-08';
const GENERATION = 2;

export interface VpcStatusReason {
  code: string;
  message: string;
  more_info?: string;
}

export interface VpcOperatingSystem {
  name: string;
  architecture: string;
  display_name?: string;
  family?: string;
  vendor?: string;
  version?: string;
}

export interface VpcImage {
  id: string;
  crn: string;
  href: string;
  name: string;
  status: 'pending' | 'available' | 'failed' | 'deleting' | 'deprecated' | 'obsolete' | 'unusable' | string;
  status_reasons: VpcStatusReason[];
  operating_system?: VpcOperatingSystem;
  resource_group: { id: string; name?: string };
  file?: { size?: number; checksums?: { sha256?: string } };
  created_at: string;
}

export interface ImagePrototype {
  name: string;
  file: { href: string };
  operating_system: { name: string };
  resource_group: { id: string };
}

// POST /images is not idempotent: retry it only when the service said it did nothing (429).
const POST_RETRY = { statusCodesToRetry: [[429, 429]], noResponseRetries: 0 };
const RETRIES = { maxRetries: 4, maxRetryInterval: 30 };

export class VpcClient extends BaseService {
  static override DEFAULT_SERVICE_URL = 'https://us-south.iaas.cloud.ibm.com/v1';
  static override DEFAULT_SERVICE_NAME = 'vpc';

  constructor(options: { serviceUrl: string; authenticator: Authenticator; version?: string }) {
    super({ serviceUrl: options.serviceUrl, authenticator: options.authenticator });
    this.version = options.version ?? VPC_API_VERSION;
    this.enableRetries(RETRIES);
  }

  private readonly version: string;

  private async call<T>(
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    opts: { path?: Record<string, string>; qs?: Record<string, string | number | undefined>; body?: unknown; signal?: AbortSignal } = {},
  ): Promise<T> {
    const axiosOptions: Record<string, unknown> = {};
    if (opts.signal) axiosOptions.signal = opts.signal;
    if (method === 'POST') {
      axiosOptions.raxConfig = {
        retry: RETRIES.maxRetries,
        retryDelay: 1000,
        httpMethodsToRetry: ['POST'],
        backoffType: 'exponential',
        checkRetryAfter: true,
        maxRetryDelay: RETRIES.maxRetryInterval * 1000,
        instance: this.getHttpClient(),
        ...POST_RETRY,
      };
    }
    const response = await this.createRequest({
      options: {
        url,
        method,
        qs: { version: this.version, generation: GENERATION, ...opts.qs },
        ...(opts.path ? { path: opts.path } : {}),
        ...(opts.body === undefined ? {} : { body: opts.body }),
        axiosOptions,
      },
      defaultOptions: {
        ...this.baseOptions,
        headers: {
          ...this.baseOptions.headers,
          Accept: 'application/json',
          ...(opts.body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
      },
    });
    return (response as { result: T }).result;
  }

  /** Images in this region with exactly this name (names are unique per region: 0 or 1). */
  async findImages(name: string, signal?: AbortSignal): Promise<VpcImage[]> {
    const out = await this.call<{ images: VpcImage[] }>('GET', '/images', { qs: { name, visibility: 'private' }, signal });
    return out.images ?? [];
  }

  /** The account's private images in this region, in a resource group, every page. */
  async listImages(resourceGroupId: string, signal?: AbortSignal): Promise<VpcImage[]> {
    const out: VpcImage[] = [];
    let start: string | undefined;
    // Bounded: 100 pages of 100 images is far beyond one farm's images in a region.
    for (let page = 0; page < 100; page++) {
      const res = await this.call<{ images?: VpcImage[]; next?: { href: string } }>('GET', '/images', {
        qs: { visibility: 'private', 'resource_group.id': resourceGroupId, limit: 100, ...(start ? { start } : {}) },
        signal,
      });
      out.push(...(res.images ?? []));
      start = res.next ? (new URL(res.next.href).searchParams.get('start') ?? undefined) : undefined;
      if (!start) break;
    }
    return out;
  }

  getImage(id: string, signal?: AbortSignal): Promise<VpcImage> {
    return this.call<VpcImage>('GET', '/images/{id}', { path: { id }, signal });
  }

  createImage(prototype: ImagePrototype, signal?: AbortSignal): Promise<VpcImage> {
    return this.call<VpcImage>('POST', '/images', { body: prototype, signal });
  }

  async deleteImage(id: string, signal?: AbortSignal): Promise<void> {
    await this.call<unknown>('DELETE', '/images/{id}', { path: { id }, signal });
  }

  getOperatingSystem(name: string, signal?: AbortSignal): Promise<VpcOperatingSystem> {
    return this.call<VpcOperatingSystem>('GET', '/operating_systems/{name}', { path: { name }, signal });
  }
}
