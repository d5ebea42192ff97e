// Fake regional VPC API, images and operating systems only: POST/GET /images, GET/DELETE
// /images/{id}, GET /operating_systems[/{name}]. It checks what the real service checks (version
// and generation query parameters, bearer token, name pattern and uniqueness per region, a cos://
// href to a readable .qcow2/.vhd object, a known operating system, an existing resource group) and
// answers with VPC's error documents. Imports really read the object from the S3 server: pending
// → available (or failed) after a few polls, deleting → gone.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import { readBody, sendEmpty, sendJson, sendVpcError } from './http.ts';
import { checkBearer } from './auth.ts';
import type { IamState } from './iam.ts';
import type { FakeResourceGroup } from './resource-manager.ts';
import { OPERATING_SYSTEMS, FARM_TO_VPC_ARCH, regionPrefix, type FakeOperatingSystem } from './catalog.ts';
import type { FakeCosReader } from './cos.ts';

export interface StatusReason {
  code: string;
  message: string;
  more_info?: string;
}

export interface FakeImage {
  id: string;
  crn: string;
  name: string;
  region: string;
  created_at: string;
  status: 'pending' | 'available' | 'failed' | 'deleting';
  status_reasons: StatusReason[];
  file: { href: string; bucket: string; key: string; etag: string; metadata: Record<string, string>; size?: number; sha256?: string };
  operating_system: FakeOperatingSystem;
  resource_group: FakeResourceGroup;
  minimum_provisioned_size?: number;
  /** Times a client has looked at the image since its last state change. */
  observed: number;
  changedAt: number;
  /** What the import found once it has read the object. */
  imported?: { ok: true; sha256: string; size: number; virtualSize?: number } | { ok: false; reason: StatusReason };
  /** An injected outcome that overrides the import's own. */
  forcedFailure?: StatusReason;
}

export interface FakeVpcTiming {
  /** Observations (GETs) of a pending image before it leaves pending (default 2). */
  importPolls: number;
  /** Or leave pending after this many ms once the object has been read. */
  importMs?: number;
  /** Observations of a deleting image before it is gone (default 1). */
  deletePolls: number;
}

const VERSION_MIN = '2019-01-01';
const NAME = /^([a-z]|[a-z][-a-z0-9]*[a-z0-9])$/;
const HREF = /^cos:\/\/([^/]+)\/([^/]+)\/(.+)$/;
const PROTOTYPE_KEYS = new Set([
  'name', 'resource_group', 'file', 'operating_system', 'encrypted_data_key', 'encryption_key',
  'deprecation_at', 'obsolescence_at', 'source_volume', 'allowed_use',
]);
/** Boot volumes in VPC are at most 250 GB: a larger virtual disk cannot be provisioned. */
const MAX_PROVISIONED_GB = 250;
const GB = 1_000_000_000;
const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]);

export interface FakeVpcDeps {
  baseUrl: () => string;
  iam: IamState;
  groups: FakeResourceGroup[];
  cos: FakeCosReader;
  regions: Set<string>;
  timing: FakeVpcTiming;
  beforeImport?: (info: { region: string; bucket: string; key: string }) => Promise<void> | void;
}

export class FakeVpc {
  readonly images = new Map<string, FakeImage>();
  private readonly failures = new Map<string, StatusReason[]>();
  private readonly imports = new Set<Promise<void>>();

  constructor(private readonly deps: FakeVpcDeps) {}

  /** The next image created in `region` ends `failed` with this reason. */
  failNextImport(region: string, reason: StatusReason): void {
    const list = this.failures.get(region) ?? [];
    list.push(reason);
    this.failures.set(region, list);
  }

  /** Puts back images saved before a restart; reads again the objects of unfinished imports. */
  restore(images: FakeImage[]): void {
    for (const image of images) {
      this.images.set(image.id, image);
      if (image.status === 'pending' && !image.imported) {
        const job = this.runImport(image).finally(() => this.imports.delete(job));
        this.imports.add(job);
      }
    }
  }

  /** Waits for background imports (object reads) to finish. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.imports]);
  }

  async handle(req: IncomingMessage, res: ServerResponse, region: string, path: string, url: URL): Promise<void> {
    if (!this.deps.regions.has(region)) {
      return sendVpcError(res, 404, 'not_found', `Region ${region} is not served here`);
    }
    const version = url.searchParams.get('version');
    if (version === null) {
      return sendVpcError(res, 400, 'missing_version', 'The `version` query parameter is required', { name: 'version', type: 'parameter' });
    }
    const versionProblem = checkVersion(version);
    if (versionProblem) return sendVpcError(res, 400, versionProblem.code, versionProblem.message, { name: version, type: 'parameter' });
    const generation = url.searchParams.get('generation');
    if (generation !== '2') {
      return sendVpcError(
        res,
        400,
        generation === null ? 'missing_generation' : 'invalid_generation',
        'The `generation` query parameter must be `2`',
        { name: 'generation', type: 'parameter' },
      );
    }
    const auth = checkBearer(req, this.deps.iam);
    if (!auth.ok) return sendVpcError(res, 401, auth.code, auth.message);

    const m = /^\/(images|operating_systems)(?:\/([^/]+))?$/.exec(path);
    if (!m) return sendVpcError(res, 404, 'not_found', `No such path: ${path}`);
    const [, collection, rawId] = m;
    const id = rawId === undefined ? undefined : decodeURIComponent(rawId);
    if (collection === 'operating_systems') {
      if (req.method !== 'GET') return sendVpcError(res, 405, 'method_not_allowed', 'Method not allowed');
      return this.operatingSystems(res, region, id);
    }
    if (id === undefined) {
      if (req.method === 'GET') return this.listImages(res, region, url);
      if (req.method === 'POST') return this.createImage(req, res, region, auth.accountId);
    } else {
      if (req.method === 'GET') return this.getImage(res, region, id);
      if (req.method === 'DELETE') return this.deleteImage(res, region, id);
    }
    sendVpcError(res, 405, 'method_not_allowed', 'Method not allowed');
  }

  // --- operating systems

  private operatingSystems(res: ServerResponse, region: string, name: string | undefined): void {
    if (name === undefined) {
      return sendJson(res, 200, {
        first: { href: `${this.regionUrl(region)}/operating_systems?limit=50` },
        limit: 50,
        total_count: OPERATING_SYSTEMS.length,
        operating_systems: OPERATING_SYSTEMS.map((os) => this.osJson(region, os)),
      });
    }
    const os = OPERATING_SYSTEMS.find((o) => o.name === name);
    if (!os) return sendVpcError(res, 404, 'not_found', `Operating system not found: ${name}`);
    sendJson(res, 200, this.osJson(region, os));
  }

  // --- images

  private listImages(res: ServerResponse, region: string, url: URL): void {
    const name = url.searchParams.get('name');
    const limitParam = url.searchParams.get('limit');
    const limit = limitParam === null ? 50 : Number(limitParam);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      return sendVpcError(res, 400, 'bad_parameter', 'limit must be an integer from 1 to 100', { name: 'limit', type: 'parameter' });
    }
    const rg = url.searchParams.get('resource_group.id');
    const start = Number(url.searchParams.get('start') ?? '0');
    const all = [...this.images.values()]
      .filter((i) => i.region === region && (name === null || i.name === name) && (rg === null || i.resource_group.id === rg))
      .sort((a, b) => b.created_at.localeCompare(a.created_at) || a.id.localeCompare(b.id));
    const page = all.slice(start, start + limit);
    for (const image of page) this.observe(image);
    // Observing can remove a deleted image: report what is still there.
    const images = page.filter((i) => this.images.has(i.id)).map((i) => this.imageJson(i));
    const base = `${this.regionUrl(region)}/images?limit=${limit}${name === null ? '' : `&name=${encodeURIComponent(name)}`}`;
    sendJson(res, 200, {
      first: { href: base },
      limit,
      ...(start + limit < all.length ? { next: { href: `${base}&start=${start + limit}` } } : {}),
      total_count: all.length,
      images,
    });
  }

  private getImage(res: ServerResponse, region: string, id: string): void {
    const image = this.images.get(id);
    if (!image || image.region !== region) return sendVpcError(res, 404, 'not_found', `Image not found: ${id}`);
    this.observe(image);
    if (!this.images.has(id)) return sendVpcError(res, 404, 'not_found', `Image not found: ${id}`);
    sendJson(res, 200, this.imageJson(image));
  }

  private deleteImage(res: ServerResponse, region: string, id: string): void {
    const image = this.images.get(id);
    if (!image || image.region !== region) return sendVpcError(res, 404, 'not_found', `Image not found: ${id}`);
    if (image.status === 'deleting') {
      return sendVpcError(res, 409, 'image_status_conflict', 'The image is already being deleted');
    }
    if (image.status === 'pending') {
      // The real service refuses while an import is in progress (status_reasons image_request_in_progress).
      return sendVpcError(res, 409, 'image_request_in_progress', 'The image cannot be deleted while its import is in progress');
    }
    this.transition(image, 'deleting', []);
    sendEmpty(res, 202);
  }

  private async createImage(req: IncomingMessage, res: ServerResponse, region: string, accountId: string): Promise<void> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      return sendVpcError(res, 415, 'unsupported_media_type', 'Content-Type must be application/json');
    }
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      return sendVpcError(res, 400, 'bad_request', 'The request body is not valid JSON');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return sendVpcError(res, 400, 'bad_request', 'The request body must be an image prototype object');
    }
    const proto = body as Record<string, unknown>;
    for (const key of Object.keys(proto)) {
      if (!PROTOTYPE_KEYS.has(key)) return sendVpcError(res, 400, 'bad_field', `Unknown property: ${key}`, { name: key, type: 'field' });
    }
    if (proto.source_volume !== undefined) {
      return sendVpcError(res, 400, 'bad_field', 'This fake imports from Cloud Object Storage only', { name: 'source_volume', type: 'field' });
    }

    // name
    const name = proto.name;
    if (name === undefined) return sendVpcError(res, 400, 'missing_field', 'name is required', { name: 'name', type: 'field' });
    if (typeof name !== 'string' || name.length > 63 || !NAME.test(name)) {
      return sendVpcError(
        res,
        400,
        'validation_invalid_name',
        'Invalid name: use 1-63 lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen',
        { name: 'name', type: 'field' },
      );
    }
    if (name.startsWith('ibm-')) {
      return sendVpcError(res, 400, 'validation_invalid_name', 'Names starting with `ibm-` are reserved for system-provided images', { name: 'name', type: 'field' });
    }
    if ([...this.images.values()].some((i) => i.region === region && i.name === name)) {
      return sendVpcError(res, 400, 'validation_unique_failed', `Provided Name (${name}) is not unique`, { name: 'name', type: 'field' });
    }

    // file.href
    const file = proto.file as { href?: unknown } | undefined;
    if (file === undefined || typeof file !== 'object' || file === null) {
      return sendVpcError(res, 400, 'missing_field', 'file is required to import an image', { name: 'file', type: 'field' });
    }
    if (typeof file.href !== 'string') return sendVpcError(res, 400, 'missing_field', 'file.href is required', { name: 'file.href', type: 'field' });
    const href = HREF.exec(file.href);
    if (!href) {
      return sendVpcError(res, 400, 'bad_field', 'file.href must be cos://<region>/<bucket>/<object>', { name: 'file.href', type: 'field' });
    }
    const [, cosRegion, bucket, key] = href as unknown as [string, string, string, string];
    if (!/\.(qcow2|vhd)$/.test(key)) {
      return sendVpcError(res, 400, 'bad_field', 'The image file extension must be qcow2 or vhd', { name: 'file.href', type: 'field' });
    }
    if (!this.deps.cos.regions.has(cosRegion)) {
      return sendVpcError(res, 400, 'bad_field', `Unknown Cloud Object Storage region: ${cosRegion}`, { name: 'file.href', type: 'field' });
    }

    // operating_system.name
    const osRef = proto.operating_system as { name?: unknown } | undefined;
    if (osRef === undefined || typeof osRef !== 'object' || osRef === null || typeof osRef.name !== 'string') {
      return sendVpcError(res, 400, 'missing_field', 'operating_system.name is required to import an image', {
        name: 'operating_system.name',
        type: 'field',
      });
    }
    const os = OPERATING_SYSTEMS.find((o) => o.name === osRef.name);
    if (!os) {
      return sendVpcError(res, 400, 'bad_field', `Operating system not found: ${osRef.name}`, { name: 'operating_system.name', type: 'field' });
    }

    // resource_group.id (absent: the account's default group)
    const rgRef = proto.resource_group as { id?: unknown } | undefined;
    let group: FakeResourceGroup | undefined;
    if (rgRef === undefined) {
      group = this.deps.groups.find((g) => g.account_id === accountId && g.default);
    } else {
      if (typeof rgRef !== 'object' || rgRef === null || typeof rgRef.id !== 'string') {
        return sendVpcError(res, 400, 'bad_field', 'resource_group must be {"id": "..."}', { name: 'resource_group', type: 'field' });
      }
      group = this.deps.groups.find((g) => g.account_id === accountId && g.id === rgRef.id);
    }
    if (!group) {
      return sendVpcError(res, 400, 'bad_field', `Resource group not found: ${String(rgRef?.id)}`, { name: 'resource_group.id', type: 'field' });
    }

    // The object: read through the S3 API as the VPC service would.
    await this.deps.beforeImport?.({ region, bucket, key });
    const info = await this.deps.cos.head(bucket, key);
    if (!info) {
      return sendVpcError(
        res,
        400,
        'bad_field',
        `The file at ${file.href} was not found in Cloud Object Storage, or the VPC service is not authorized to read it`,
        { name: 'file.href', type: 'field' },
      );
    }
    const farmArch = info.metadata['farm-arch'];
    const fileArch = farmArch === undefined ? undefined : FARM_TO_VPC_ARCH[farmArch];
    if (farmArch !== undefined && fileArch !== os.architecture) {
      return sendVpcError(
        res,
        400,
        'bad_field',
        `Operating system ${os.name} is ${os.architecture}, but the image file is ${farmArch}`,
        { name: 'operating_system.name', type: 'field' },
      );
    }

    const now = new Date();
    const id = `${regionPrefix(region)}-${randomUUID()}`;
    const image: FakeImage = {
      id,
      crn: `crn:v1:bluemix:public:is:${region}:a/${accountId}::image:${id}`,
      name,
      region,
      created_at: now.toISOString(),
      status: 'pending',
      status_reasons: [{ code: 'image_request_in_progress', message: 'The image is being imported from Cloud Object Storage' }],
      file: { href: file.href, bucket, key, etag: info.etag, metadata: info.metadata },
      operating_system: os,
      resource_group: group,
      observed: 0,
      changedAt: Date.now(),
      ...(this.failures.get(region)?.length ? { forcedFailure: this.failures.get(region)!.shift()! } : {}),
    };
    this.images.set(id, image);
    const job = this.runImport(image).finally(() => this.imports.delete(job));
    this.imports.add(job);
    sendJson(res, 201, this.imageJson(image), { Location: `${this.regionUrl(region)}/images/${id}` });
  }

  /** Reads the whole object: checksum, qcow2 header (magic and virtual size). */
  private async runImport(image: FakeImage): Promise<void> {
    try {
      const stream = await this.deps.cos.open(image.file.bucket, image.file.key);
      const hash = createHash('sha256');
      let size = 0;
      let head = Buffer.alloc(0);
      for await (const chunk of stream) {
        const b = chunk as Buffer;
        hash.update(b);
        size += b.length;
        if (head.length < 32) head = Buffer.concat([head, b.subarray(0, 32 - head.length)]);
      }
      if (image.file.key.endsWith('.qcow2')) {
        if (head.length < 32 || !head.subarray(0, 4).equals(QCOW2_MAGIC)) {
          image.imported = { ok: false, reason: { code: 'image_data_corrupted', message: 'The image file is not in qcow2 format' } };
          return;
        }
        const virtualSize = Number(head.readBigUInt64BE(24));
        if (virtualSize > MAX_PROVISIONED_GB * GB) {
          image.imported = {
            ok: false,
            reason: { code: 'image_provisioned_size_unsupported', message: `The image needs a boot volume over ${MAX_PROVISIONED_GB} GB` },
          };
          return;
        }
        image.imported = { ok: true, sha256: hash.digest('hex'), size, virtualSize };
        return;
      }
      image.imported = { ok: true, sha256: hash.digest('hex'), size };
    } catch {
      image.imported = {
        ok: false,
        reason: { code: 'image_data_corrupted', message: 'The image file could not be read from Cloud Object Storage' },
      };
    }
  }

  /** A client looked at the image: advance its state machine. */
  private observe(image: FakeImage): void {
    image.observed += 1;
    const { importPolls, importMs, deletePolls } = this.deps.timing;
    if (image.status === 'pending' && image.imported) {
      const due = image.observed >= importPolls || (importMs !== undefined && Date.now() - image.changedAt >= importMs);
      if (!due) return;
      const failure = image.forcedFailure ?? (image.imported.ok ? undefined : image.imported.reason);
      if (failure) return this.transition(image, 'failed', [failure]);
      const imported = image.imported as { ok: true; sha256: string; size: number; virtualSize?: number };
      image.file.size = Math.max(1, Math.ceil(imported.size / GB));
      image.file.sha256 = imported.sha256;
      image.minimum_provisioned_size = Math.max(1, Math.ceil((imported.virtualSize ?? imported.size) / GB));
      return this.transition(image, 'available', []);
    }
    if (image.status === 'deleting' && image.observed > deletePolls) {
      this.images.delete(image.id);
    }
  }

  private transition(image: FakeImage, status: FakeImage['status'], reasons: StatusReason[]): void {
    image.status = status;
    image.status_reasons = reasons;
    image.observed = 0;
    image.changedAt = Date.now();
  }

  private regionUrl(region: string): string {
    return `${this.deps.baseUrl()}/${region}/v1`;
  }

  private osJson(region: string, os: FakeOperatingSystem): Record<string, unknown> {
    return { href: `${this.regionUrl(region)}/operating_systems/${os.name}`, ...os };
  }

  imageJson(image: FakeImage): Record<string, unknown> {
    const available = image.status === 'available' || image.status === 'deleting';
    return {
      catalog_offering: { managed: false },
      created_at: image.created_at,
      crn: image.crn,
      encryption: 'none',
      file: available && image.file.size !== undefined ? { size: image.file.size, checksums: { sha256: image.file.sha256 } } : {},
      href: `${this.regionUrl(image.region)}/images/${image.id}`,
      id: image.id,
      ...(available && image.minimum_provisioned_size !== undefined ? { minimum_provisioned_size: image.minimum_provisioned_size } : {}),
      name: image.name,
      operating_system: this.osJson(image.region, image.operating_system),
      owner_type: 'user',
      resource_group: {
        href: `https://resource-controller.cloud.ibm.com/v2/resource_groups/${image.resource_group.id}`,
        id: image.resource_group.id,
        name: image.resource_group.name,
      },
      resource_type: 'image',
      status: image.status,
      status_reasons: image.status_reasons.map((r) => ({
        ...r,
        more_info: r.more_info ?? 'https://cloud.ibm.com/docs/vpc?topic=vpc-managing-custom-images',
      })),
      visibility: 'private',
    };
  }
}

function checkVersion(version: string): { code: string; message: string } | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(version);
  const date = m ? new Date(`${version}T00:00:00Z`) : undefined;
  if (!m || !date || Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== version) {
    return { code: 'invalid_version', message: 'The `version` value must be a date in the format YYYY-MM-DD' };
  }
  if (version < VERSION_MIN) return { code: 'invalid_version_range', message: `The \`version\` value cannot be before \`${VERSION_MIN}\`.` };
  const today = new Date().toISOString().slice(0, 10);
  if (version > today) return { code: 'invalid_version_range', message: `The \`version\` value cannot be after \`${today}\`.` };
  return undefined;
}
