// A strict fake of IBM Cloud IAM, Resource Manager and the VPC image API on one node:http server
// on 127.0.0.1, for tests that drive the real SDKs (ibm-cloud-sdk-core, platform-services).
//
// Routes: POST /identity/token (IAM), GET /v2/resource_groups[/{id}] (Resource Manager), and the
// VPC API of each region under a path prefix, /<region>/v1/... — so an uploader configured with
// the endpoint template `${url}/{region}/v1` reaches "region" the way it would reach
// https://<region>.iaas.cloud.ibm.com/v1.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { handleIam, type IamState } from './iam.ts';
import { handleResourceManager, makeResourceGroup, type FakeResourceGroup } from './resource-manager.ts';
import { FakeVpc, type FakeImage, type StatusReason } from './vpc.ts';
import { FakeCosReader, type FakeCosOptions } from './cos.ts';
import { BodyTooLarge, sendVpcError } from './http.ts';
import { authOf, handleCosDoor, type CosDoorRequest } from './cos-door.ts';
import { readStateFile, StateFile } from '../state-file.ts';
import { FakeTagging } from './tagging.ts';

export type { FakeImage, StatusReason } from './vpc.ts';
export type { CosDoorRequest } from './cos-door.ts';
export type { FakeResourceGroup } from './resource-manager.ts';
export { OPERATING_SYSTEMS } from './catalog.ts';

export interface IbmFakeOptions {
  cos: FakeCosOptions;
  /** Valid API keys (default: one random key, see IbmFake.apiKey). */
  apiKeys?: string[];
  accountId?: string;
  /** Resource groups of the account (default: "Default", the default group). */
  resourceGroups?: { name: string; id?: string; default?: boolean }[];
  /** VPC regions served (default: us-south, us-east, eu-de, eu-gb, jp-tok, br-sao, ca-tor). */
  regions?: string[];
  tokenTtlSeconds?: number;
  /** Key that signs IAM tokens (default: random per process, so a restart invalidates tokens). */
  tokenSecret?: Buffer;
  /** Observations of a pending image before it settles (default 2). */
  importPolls?: number;
  /** Or settle this many ms after creation, whichever comes first. */
  importMs?: number;
  /** Observations of a deleting image before it is gone (default 1). */
  deletePolls?: number;
  /** Port on 127.0.0.1 (default: any free one). */
  port?: number;
  /** Also serve COS's S3 API (HMAC or IAM bearer) in front of this S3 server (cos-door.ts). */
  cosDoor?: { upstream: string; port?: number };
  /**
   * JSON file keeping the images across restarts (default: none). Use it with a fixed accountId,
   * resource group ids and API keys, or the restored images belong to nobody.
   */
  statePath?: string;
}

interface SavedIbmState {
  version: 1;
  images: FakeImage[];
  /** Global Tagging's user tags per CRN (absent in files written before tags). */
  tags?: Record<string, string[]>;
}

export interface InjectedFault {
  status: 429 | 500 | 502 | 503;
  /** How many matching requests fail (default 1). */
  count?: number;
  method?: string;
  /** Matches the request path (without query), e.g. /\/images$/. */
  path?: RegExp;
}

export interface LoggedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
}

export interface IbmFake {
  url: string;
  /** COS's S3 endpoint (HMAC or IAM bearer), when started with cosDoor. */
  cosUrl: string | undefined;
  /** Requests the COS door answered, with how each was authenticated. */
  cosRequests: CosDoorRequest[];
  apiKey: string;
  accountId: string;
  endpoints: { iam: string; resourceManager: string; vpc: string; tagging: string };
  /** User tags attached to a CRN (Global Tagging). */
  tagsOf(crn: string): string[];
  resourceGroups: FakeResourceGroup[];
  requests: LoggedRequest[];
  /** Images in a region (or all), as the fake holds them. */
  images(region?: string): FakeImage[];
  /** The next image created in the region ends `failed` with this reason. */
  failNextImport(region: string, reason?: StatusReason): void;
  /** The next matching requests are answered with this status (429 with Retry-After). */
  injectFault(fault: InjectedFault): void;
  /** Tokens issued so far stop working (the services answer 401 as for an expired token). */
  expireTokens(): void;
  tokensIssued(): number;
  /** Runs before the fake VPC looks at a COS object (tests use it to remove the object first). */
  setBeforeImport(hook: ((info: { region: string; bucket: string; key: string }) => Promise<void> | void) | undefined): void;
  stop(): Promise<void>;
}

const DEFAULT_REGIONS = ['us-south', 'us-east', 'eu-de', 'eu-gb', 'jp-tok', 'br-sao', 'ca-tor'];

export async function startIbmFake(opts: IbmFakeOptions): Promise<IbmFake> {
  const accountId = opts.accountId ?? randomBytes(16).toString('hex');
  const apiKey = randomBytes(33).toString('base64url');
  const iam: IamState = {
    secret: opts.tokenSecret ?? randomBytes(32),
    apiKeys: new Set(opts.apiKeys ?? [apiKey]),
    accountId,
    tokenTtlSeconds: opts.tokenTtlSeconds ?? 3600,
    generation: 0,
    issued: 0,
  };
  const groups = (opts.resourceGroups ?? [{ name: 'Default', default: true }]).map((g) =>
    makeResourceGroup(accountId, g.name, g.default ?? false, g.id),
  );
  const cos = new FakeCosReader(opts.cos);
  let url = '';
  let beforeImport: ((info: { region: string; bucket: string; key: string }) => Promise<void> | void) | undefined;
  const vpc = new FakeVpc({
    baseUrl: () => url,
    iam,
    groups,
    cos,
    regions: new Set(opts.regions ?? DEFAULT_REGIONS),
    timing: { importPolls: opts.importPolls ?? 2, importMs: opts.importMs, deletePolls: opts.deletePolls ?? 1 },
    beforeImport: (info) => beforeImport?.(info),
  });
  const tagging = new FakeTagging({ iam, exists: (crn) => [...vpc.images.values()].some((i) => i.crn === crn) });
  const stateFile =
    opts.statePath === undefined
      ? undefined
      : new StateFile(opts.statePath, (): SavedIbmState => ({ version: 1, images: [...vpc.images.values()], tags: tagging.save() }));
  if (opts.statePath !== undefined) {
    const saved = readStateFile<SavedIbmState>(opts.statePath);
    if (saved && saved.version !== 1) throw new Error(`unknown IBM fake state version ${String(saved.version)}`);
    if (saved) vpc.restore(saved.images);
    if (saved) tagging.restore(saved.tags);
  }
  const faults: (InjectedFault & { count: number })[] = [];
  const requests: LoggedRequest[] = [];

  const route = async (req: IncomingMessage, res: ServerResponse, u: URL): Promise<void> => {
    const fault = faults.find((f) => (!f.method || f.method === req.method) && (!f.path || f.path.test(u.pathname)));
    if (fault) {
      fault.count -= 1;
      if (fault.count <= 0) faults.splice(faults.indexOf(fault), 1);
      req.resume();
      return sendVpcError(
        res,
        fault.status,
        fault.status === 429 ? 'rate_limited' : 'internal_error',
        fault.status === 429 ? 'Too many requests' : 'Internal error (injected)',
        undefined,
        fault.status === 429 ? { 'Retry-After': '1' } : {},
      );
    }
    if (u.pathname.startsWith('/identity/')) return handleIam(req, res, u.pathname, iam);
    if (u.pathname === '/v2/resource_groups' || u.pathname.startsWith('/v2/resource_groups/')) {
      return handleResourceManager(req, res, u, iam, groups);
    }
    if (u.pathname === '/v3/tags' || u.pathname.startsWith('/v3/tags/')) return tagging.handle(req, res, u.pathname, u);
    const m = /^\/([a-z0-9-]+)\/v1(\/.*)$/.exec(u.pathname);
    if (m) return vpc.handle(req, res, m[1]!, m[2]!, u);
    sendVpcError(res, 404, 'not_found', `No such path: ${u.pathname}`);
  };

  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://fake');
    res.on('finish', () => {
      requests.push({ method: req.method ?? '', path: u.pathname, query: Object.fromEntries(u.searchParams), status: res.statusCode });
      // Any request may have changed state (GETs advance pending and deleting images too).
      stateFile?.touch();
    });
    route(req, res, u).catch((err: unknown) => {
      if (res.headersSent) return res.destroy();
      if (err instanceof BodyTooLarge) return sendVpcError(res, 413, 'request_too_large', err.message);
      sendVpcError(res, 500, 'internal_error', `fake failure: ${(err as Error).message}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const cosRequests: CosDoorRequest[] = [];
  let door: Server | undefined;
  let cosUrl: string | undefined;
  if (opts.cosDoor) {
    const upstream = new URL(opts.cosDoor.upstream);
    door = createServer((req, res) => {
      const auth = authOf(req);
      res.on('finish', () => cosRequests.push({ method: req.method ?? '', path: new URL(req.url ?? '/', 'http://x').pathname, auth, status: res.statusCode }));
      handleCosDoor(req, res, iam, upstream).catch(() =>
        res.headersSent ? res.destroy() : sendVpcError(res, 502, 'bad_gateway', 'the S3 server behind the COS door failed'),
      );
    });
    await new Promise<void>((resolve, reject) => {
      door!.once('error', reject);
      door!.listen(opts.cosDoor!.port ?? 0, '127.0.0.1', () => resolve());
    });
    cosUrl = `http://127.0.0.1:${(door.address() as AddressInfo).port}`;
  }

  return {
    url,
    cosUrl,
    cosRequests,
    apiKey,
    accountId,
    endpoints: { iam: url, resourceManager: url, vpc: `${url}/{region}/v1`, tagging: url },
    tagsOf: (crn) => [...(tagging.tags.get(crn) ?? [])],
    resourceGroups: groups,
    requests,
    images: (region) => [...vpc.images.values()].filter((i) => region === undefined || i.region === region),
    failNextImport: (region, reason = { code: 'image_data_corrupted', message: 'image data is corrupt, or is not in the specified format' }) =>
      vpc.failNextImport(region, reason),
    injectFault: (f) => faults.push({ ...f, count: f.count ?? 1 }),
    expireTokens: () => {
      iam.generation += 1;
    },
    tokensIssued: () => iam.issued,
    setBeforeImport: (hook) => {
      beforeImport = hook;
    },
    stop: async () => {
      for (const srv of [server, door]) {
        if (!srv) continue;
        await new Promise<void>((resolve) => {
          srv.close(() => resolve());
          srv.closeAllConnections();
        });
      }
      await vpc.settle();
      await stateFile?.flush();
      cos.destroy();
    },
  };
}
