// The Glance v2 calls farm makes: create an image record, stream its data, read it back, list by
// name and owner, delete.

import { FarmError } from '../../src/core/errors.ts';
import type { Http } from './http.ts';

export interface GlanceImage {
  id: string;
  name: string | null;
  status: string;
  size?: number | null;
  disk_format?: string | null;
  container_format?: string | null;
  visibility?: string;
  owner?: string;
  os_hash_algo?: string | null;
  os_hash_value?: string | null;
  [property: string]: unknown;
}

// Glance pages lists (25 per page by default); farm lists images of one name, so a few pages
// are plenty, and the bound keeps a misbehaving `next` link from looping forever.
const PAGE_SIZE = 100;
const MAX_PAGES = 20;

export class Glance {
  constructor(
    private readonly http: Http,
    /** Base URL without /v2. */
    readonly base: string,
    private readonly token: (signal: AbortSignal) => Promise<string>,
  ) {}

  private async auth(signal: AbortSignal): Promise<Record<string, string>> {
    return { 'X-Auth-Token': await this.token(signal) };
  }

  async create(fields: Record<string, unknown>, signal: AbortSignal): Promise<GlanceImage> {
    return this.http.json<GlanceImage>({
      method: 'POST',
      url: `${this.base}/v2/images`,
      what: `create image ${String(fields.name)}`,
      headers: await this.auth(signal),
      json: fields,
      expect: [201],
      retry: 'throttled',
      signal,
    });
  }

  /**
   * PUT /v2/images/{id}/file: streams `body()` (called again for a retry) without buffering. The
   * length is declared, as openstacksdk does: proxies in front of Glance may refuse chunked
   * bodies, and the client then fails if the file yields more or fewer bytes.
   */
  async upload(id: string, body: () => AsyncIterable<Uint8Array>, length: number, signal: AbortSignal): Promise<void> {
    await this.http.request({
      method: 'PUT',
      url: `${this.base}/v2/images/${encodeURIComponent(id)}/file`,
      what: `upload data of image ${id}`,
      headers: {
        ...(await this.auth(signal)),
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(length),
      },
      body,
      expect: [204],
      // Re-sending a whole image for a 500 rarely helps; 429/503 mean Glance took nothing.
      retry: 'throttled',
      signal,
      noTimeout: true,
    });
  }

  async get(id: string, signal: AbortSignal): Promise<GlanceImage> {
    return this.http.json<GlanceImage>({
      method: 'GET',
      url: `${this.base}/v2/images/${encodeURIComponent(id)}`,
      what: `read image ${id}`,
      headers: await this.auth(signal),
      retry: 'all',
      signal,
    });
  }

  /** GET /v2/images with filters (name, owner, status, ...), following `next` links. */
  async list(filters: Record<string, string>, signal: AbortSignal): Promise<GlanceImage[]> {
    const out: GlanceImage[] = [];
    let next: string | undefined = `/v2/images?${new URLSearchParams({ ...filters, limit: String(PAGE_SIZE) })}`;
    for (let page = 0; next && page < MAX_PAGES; page++) {
      const doc: { images?: GlanceImage[]; next?: string } = await this.http.json({
        method: 'GET',
        // Glance's `next` is a path from its root; the base may carry a prefix (…/image).
        url: next.startsWith('/') ? `${this.base}${next}` : next,
        what: 'list images',
        headers: await this.auth(signal),
        retry: 'all',
        signal,
      });
      out.push(...(doc.images ?? []));
      next = doc.next;
    }
    if (next) throw new FarmError('UPLOAD', `listing images at ${this.base} did not end after ${MAX_PAGES} pages`);
    return out;
  }

  /** One small authenticated read: proves Glance is reachable and accepts the token. */
  async probe(signal: AbortSignal): Promise<void> {
    await this.http.json({
      method: 'GET',
      url: `${this.base}/v2/images?limit=1`,
      what: `reach Glance at ${this.base}`,
      headers: await this.auth(signal),
      retry: 'all',
      signal,
    });
  }

  /** PATCH with a JSON patch (add, replace and remove of properties and visibility). */
  async update(id: string, ops: Array<{ op: 'add' | 'replace' | 'remove'; path: string; value?: unknown }>, signal: AbortSignal): Promise<GlanceImage> {
    return this.http.json<GlanceImage>({
      method: 'PATCH',
      url: `${this.base}/v2/images/${encodeURIComponent(id)}`,
      what: `update image ${id}`,
      headers: { ...(await this.auth(signal)), 'Content-Type': 'application/openstack-images-v2.1-json-patch' },
      json: ops,
      expect: [200],
      retry: 'throttled',
      signal,
    });
  }

  /** Deletes the image; one that is already gone counts as deleted. */
  async remove(id: string, signal: AbortSignal): Promise<void> {
    await this.http.request({
      method: 'DELETE',
      url: `${this.base}/v2/images/${encodeURIComponent(id)}`,
      what: `delete image ${id}`,
      headers: await this.auth(signal),
      expect: [204, 404],
      retry: 'all',
      signal,
    });
  }
}
