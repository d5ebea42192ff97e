// Fake IBM Cloud Global Tagging API (v3), user tags only: GET /v3/tags?attached_to=CRN,
// POST /v3/tags/attach and POST /v3/tags/detach, as https://tags.global-search-tagging.cloud.ibm.com
// answers them. Refuses what the service refuses: a tag name over 128 characters or with other
// characters than letters, digits, spaces, '_', '-', '.' and ':'; more than 1000 tags on a
// resource; a resource CRN that names nothing the account has. Tags are case-insensitive and
// kept lowercase, as the service shows them.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkBearer } from './auth.ts';
import { readBody, sendJson, sendVpcError } from './http.ts';
import type { IamState } from './iam.ts';

const TAG = /^[A-Za-z0-9 _\-.:]+$/;
const TAG_MAX = 128;
const MAX_PER_RESOURCE = 1000;
const MAX_LIST = 1000;

export interface TaggingDeps {
  iam: IamState;
  /** True when the account holds a resource of this CRN (the fake's images). */
  exists: (crn: string) => boolean;
}

export class FakeTagging {
  /** CRN -> its user tags (lowercase). */
  readonly tags = new Map<string, Set<string>>();

  constructor(private readonly deps: TaggingDeps) {}

  restore(saved: Record<string, string[]> | undefined): void {
    for (const [crn, list] of Object.entries(saved ?? {})) this.tags.set(crn, new Set(list));
  }

  save(): Record<string, string[]> {
    return Object.fromEntries([...this.tags].map(([crn, set]) => [crn, [...set]]));
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string, url: URL): Promise<void> {
    const auth = checkBearer(req, this.deps.iam);
    if (!auth.ok) {
      req.resume();
      return sendVpcError(res, 401, auth.code, auth.message);
    }
    const type = url.searchParams.get('tag_type') ?? 'user';
    if (type !== 'user') {
      req.resume();
      return sendVpcError(res, 400, 'invalid_tag_type', `the fake serves user tags only, not '${type}'`);
    }
    if (path === '/v3/tags' && req.method === 'GET') return this.list(res, url);
    if ((path === '/v3/tags/attach' || path === '/v3/tags/detach') && req.method === 'POST') {
      return this.change(req, res, path.endsWith('attach'));
    }
    req.resume();
    sendVpcError(res, 404, 'not_found', `No such path: ${path}`);
  }

  private list(res: ServerResponse, url: URL): void {
    const crn = url.searchParams.get('attached_to');
    const offset = Number(url.searchParams.get('offset') ?? '0');
    const limit = Number(url.searchParams.get('limit') ?? '100');
    if (!Number.isInteger(offset) || offset < 0) return sendVpcError(res, 400, 'bad_parameter', 'offset must be a non-negative integer');
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST) return sendVpcError(res, 400, 'bad_parameter', `limit must be an integer from 1 to ${MAX_LIST}`);
    const all = crn === null ? [...new Set([...this.tags.values()].flatMap((s) => [...s]))] : [...(this.tags.get(crn) ?? [])];
    all.sort();
    sendJson(res, 200, { total_count: all.length, offset, limit, items: all.slice(offset, offset + limit).map((name) => ({ name })) });
  }

  private async change(req: IncomingMessage, res: ServerResponse, attach: boolean): Promise<void> {
    let body: { resources?: Array<{ resource_id?: unknown }>; tag_names?: unknown; tag_name?: unknown };
    try {
      body = JSON.parse(await readBody(req)) as typeof body;
    } catch {
      return sendVpcError(res, 400, 'invalid_body', 'The request body is not JSON');
    }
    const names = [...(Array.isArray(body.tag_names) ? body.tag_names : []), ...(body.tag_name === undefined ? [] : [body.tag_name])];
    if (!Array.isArray(body.resources) || body.resources.length === 0) return sendVpcError(res, 400, 'missing_resources', 'resources is required');
    if (names.length === 0) return sendVpcError(res, 400, 'missing_tag_names', 'tag_names is required');
    for (const n of names) {
      if (typeof n !== 'string' || n.trim() === '' || n.length > TAG_MAX || !TAG.test(n)) {
        return sendVpcError(res, 400, 'invalid_tag_name', `The tag name '${String(n)}' is not valid: up to ${TAG_MAX} characters, letters, digits, spaces, '_', '-', '.' and ':'`);
      }
    }
    const lower = names.map((n) => (n as string).trim().toLowerCase());
    const results = body.resources.map((r) => {
      const crn = typeof r.resource_id === 'string' ? r.resource_id : '';
      if (!crn || !this.deps.exists(crn)) return { resource_id: crn, is_error: true, message: `The resource ${crn} was not found` };
      const set = this.tags.get(crn) ?? new Set<string>();
      if (attach) {
        const next = new Set([...set, ...lower]);
        if (next.size > MAX_PER_RESOURCE) return { resource_id: crn, is_error: true, message: `A resource can have at most ${MAX_PER_RESOURCE} tags` };
        this.tags.set(crn, next);
      } else {
        for (const n of lower) set.delete(n);
        this.tags.set(crn, set);
      }
      return { resource_id: crn, is_error: false };
    });
    sendJson(res, 200, { results });
  }
}
