// IBM Cloud Global Tagging (v3) through ibm-cloud-sdk-core's BaseService: the user tags that carry
// the farm's identity on each VPC image (attach, detach, read by CRN). Only the calls the farm needs.

import { BaseService, type Authenticator } from 'ibm-cloud-sdk-core';

export const DEFAULT_TAGGING_URL = 'https://tags.global-search-tagging.cloud.ibm.com';
const RETRIES = { maxRetries: 4, maxRetryInterval: 30 };
// A resource has at most 1000 tags; one page reads them all.
const PAGE = 1000;

export class TaggingClient extends BaseService {
  static override DEFAULT_SERVICE_URL = DEFAULT_TAGGING_URL;
  static override DEFAULT_SERVICE_NAME = 'global_tagging';

  constructor(options: { serviceUrl: string; authenticator: Authenticator }) {
    super({ serviceUrl: options.serviceUrl, authenticator: options.authenticator });
    this.enableRetries(RETRIES);
  }

  private async call<T>(method: 'GET' | 'POST', url: string, qs: Record<string, string | number>, body?: unknown, signal?: AbortSignal): Promise<T> {
    const response = await this.createRequest({
      options: { url, method, qs, ...(body === undefined ? {} : { body }), axiosOptions: signal ? { signal } : {} },
      defaultOptions: {
        ...this.baseOptions,
        headers: { ...this.baseOptions.headers, Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      },
    });
    return (response as { result: T }).result;
  }

  async tagsOf(crn: string, signal?: AbortSignal): Promise<string[]> {
    const out = await this.call<{ items?: Array<{ name: string }> }>('GET', '/v3/tags', { attached_to: crn, tag_type: 'user', limit: PAGE }, undefined, signal);
    return (out.items ?? []).map((i) => i.name);
  }

  private async change(op: 'attach' | 'detach', crn: string, tags: string[], signal?: AbortSignal): Promise<void> {
    if (tags.length === 0) return;
    const out = await this.call<{ results?: Array<{ resource_id: string; is_error?: boolean; message?: string }> }>(
      'POST',
      `/v3/tags/${op}`,
      { tag_type: 'user' },
      { resources: [{ resource_id: crn }], tag_names: tags },
      signal,
    );
    const failed = (out.results ?? []).find((r) => r.is_error);
    if (failed) throw new Error(`Global Tagging could not ${op} tags on ${crn}: ${failed.message ?? 'is_error'}`);
  }

  attach(crn: string, tags: string[], signal?: AbortSignal): Promise<void> {
    return this.change('attach', crn, tags, signal);
  }

  detach(crn: string, tags: string[], signal?: AbortSignal): Promise<void> {
    return this.change('detach', crn, tags, signal);
  }
}
