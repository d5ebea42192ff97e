// A strict fake of Azure Resource Manager (Microsoft.Compute images, galleries) and of Entra ID's
// token endpoint on one https server, for the real @azure/identity and @azure/arm-compute. ARM
// has no open implementation; the Blob service it reads VHDs from is the real Azurite.
//
//   /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/oauth2/v2.0/token   (aad.ts)
//   /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/images[/{name}]
//   .../galleries/{g}/images/{def}[/versions[/{v}]]
//   /subscriptions/{s}/providers/Microsoft.Compute/locations/{l}/operations/{id}   (Azure-AsyncOperation)
//
// Every ARM request needs api-version and a bearer token this fake issued for this server's URL.

import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { BodyTooLarge, sendJson } from '../ibm/http.ts';
import { readStateFile, StateFile } from '../state-file.ts';
import { checkToken, handleAad, type AadState } from './aad.ts';
import { ArmError, newOperation, vhdRefusal, type BlobProbe, type FakeOperation, type FakeResource } from './compute.ts';
import { gallery, images, type ComputeContext } from './resources.ts';

export interface GallerySeed {
  resourceGroup: string;
  gallery: string;
  image: string;
  architecture: 'x64' | 'Arm64';
  hyperVGeneration?: 'V1' | 'V2';
  location: string;
}

export interface AzureFakeOptions {
  tls: { key: string; cert: string };
  tenantId: string;
  subscriptionId: string;
  clients: Record<string, string>;
  resourceGroups: string[];
  galleries?: GallerySeed[];
  /** Storage accounts (name -> resource group) whose blobs the fake may read, and how. */
  storageAccounts: Record<string, string>;
  probe: BlobProbe;
  /** Runs when an operation copies its source blob (tests read the blob here). */
  onCopy?: (blobUri: string) => Promise<void>;
  /** Operation polls before it settles (default 2). */
  settlePolls?: number;
  tokenSecret?: Buffer;
  tokenTtlSeconds?: number;
  port?: number;
  host?: string;
  statePath?: string;
}

export interface LoggedArmRequest {
  method: string;
  path: string;
  status: number;
  code?: string;
}

export interface AzureFake {
  url: string;
  authorityHost: string;
  resources(): FakeResource[];
  requests: LoggedArmRequest[];
  tokensIssued(): number;
  /** The next create fails in its operation with this error (as a corrupt VHD does). */
  failNextCreate(error?: { code: string; message: string }): void;
  expireTokens(): void;
  stop(): Promise<void>;
}

interface Saved {
  version: 1;
  resources: FakeResource[];
}

export async function startAzureFake(o: AzureFakeOptions): Promise<AzureFake> {
  const aad: AadState = {
    tenantId: o.tenantId,
    clients: new Map(Object.entries(o.clients)),
    secret: o.tokenSecret ?? randomBytes(32),
    tokenTtlSeconds: o.tokenTtlSeconds ?? 3600,
    issued: 0,
    notBefore: 0,
  };
  const sub = o.subscriptionId.toLowerCase();
  const groups = new Set(o.resourceGroups.map((g) => g.toLowerCase()));
  const resources = new Map<string, FakeResource>(); // lower-case id -> resource
  const operations = new Map<string, FakeOperation>();
  const settlePolls = o.settlePolls ?? 2;
  const requests: LoggedArmRequest[] = [];
  let failNext: { code: string; message: string } | undefined;
  let url = '';

  const rgId = (rg: string) => `/subscriptions/${o.subscriptionId}/resourceGroups/${rg}`;
  for (const g of o.galleries ?? []) {
    const gid = `${rgId(g.resourceGroup)}/providers/Microsoft.Compute/galleries/${g.gallery}`;
    resources.set(gid.toLowerCase(), { id: gid, name: g.gallery, type: 'Microsoft.Compute/galleries', location: g.location, tags: {}, properties: { provisioningState: 'Succeeded', identifier: { uniqueName: `${o.subscriptionId}-${g.gallery.toUpperCase()}` } } });
    const iid = `${gid}/images/${g.image}`;
    resources.set(iid.toLowerCase(), {
      id: iid,
      name: g.image,
      type: 'Microsoft.Compute/galleries/images',
      location: g.location,
      tags: {},
      properties: {
        osType: 'Linux',
        osState: 'Generalized',
        hyperVGeneration: g.hyperVGeneration ?? 'V2',
        architecture: g.architecture,
        identifier: { publisher: 'farm-lab', offer: 'bootc', sku: g.image },
        provisioningState: 'Succeeded',
      },
    });
  }
  const stateFile = o.statePath === undefined ? undefined : new StateFile(o.statePath, (): Saved => ({ version: 1, resources: [...resources.values()] }));
  if (o.statePath !== undefined) {
    const saved = readStateFile<Saved>(o.statePath);
    if (saved) for (const r of saved.resources) resources.set(r.id.toLowerCase(), r);
  }

  const view = (r: FakeResource) => ({ id: r.id, name: r.name, type: r.type, location: r.location, tags: r.tags, properties: r.properties });
  const opUrl = (op: FakeOperation) => `${url}/subscriptions/${o.subscriptionId}/providers/Microsoft.Compute/locations/${op.location}/operations/${op.id}?api-version=2025-04-01`;
  const lroHeaders = (op: FakeOperation) => ({ 'Azure-AsyncOperation': opUrl(op), 'Retry-After': '0' });

  const storageAccountOf = (accountId: string) => {
    const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Storage\/storageAccounts\/([^/]+)$/i.exec(accountId);
    if (!m || m[1]!.toLowerCase() !== sub) return undefined;
    const rg = o.storageAccounts[m[3]!];
    return rg !== undefined && rg.toLowerCase() === m[2]!.toLowerCase() ? m[3] : undefined;
  };

  /** Creating a resource from a blob: checked now, copied (and checked again) when the operation ends. */
  const startCreate = async (res: ServerResponse, id: string, resource: FakeResource, blobUri: string) => {
    const refusal = vhdRefusal(blobUri, await o.probe(blobUri));
    if (refusal) throw new ArmError(400, refusal.code, refusal.message, 'blobUri');
    resources.set(id.toLowerCase(), resource);
    const injected = failNext;
    failNext = undefined;
    const op = newOperation(resource.location, async () => {
      // Azure copies the VHD while the operation runs: the blob must still be there.
      const again = injected ?? vhdRefusal(blobUri, await o.probe(blobUri));
      if (!again) await o.onCopy?.(blobUri);
      resource.properties.provisioningState = again ? 'Failed' : 'Succeeded';
      return again;
    });
    operations.set(op.id, op);
    sendJson(res, 201, view(resource), lroHeaders(op));
  };

  const startDelete = (res: ServerResponse, id: string) => {
    const r = resources.get(id.toLowerCase());
    if (!r) return sendEmpty(res, 204);
    r.properties.provisioningState = 'Deleting';
    const op = newOperation(r.location, async () => {
      resources.delete(id.toLowerCase());
      return undefined;
    });
    operations.set(op.id, op);
    res.writeHead(202, { ...lroHeaders(op), Location: `${opUrl(op)}&result=1`, 'Content-Length': 0 });
    res.end();
  };


  const ctx: ComputeContext = { resources, rgId, view, startCreate, startDelete, storageAccountOf };

  const operation = async (req: IncomingMessage, res: ServerResponse, id: string, u: URL) => {
    const op = operations.get(id);
    if (!op || req.method !== 'GET') throw new ArmError(404, 'NotFound', `Operation ${id} was not found.`);
    op.polls += 1;
    if (op.status === 'InProgress' && op.polls >= settlePolls) {
      const error = await op.finish();
      op.status = error ? 'Failed' : 'Succeeded';
      op.error = error;
      op.endTime = new Date().toISOString();
    }
    if (u.searchParams.has('result')) {
      // The Location of a delete: 202 while it runs, 204 once done.
      if (op.status === 'InProgress') return res.writeHead(202, { 'Retry-After': '0', 'Content-Length': 0 }).end();
      return sendEmpty(res, 204);
    }
    sendJson(res, 200, { name: op.id, status: op.status, startTime: op.startTime, ...(op.endTime ? { endTime: op.endTime } : {}), ...(op.error ? { error: op.error } : {}) }, op.status === 'InProgress' ? { 'Retry-After': '0' } : {});
  };

  const arm = async (req: IncomingMessage, res: ServerResponse, u: URL) => {
    if (!u.searchParams.get('api-version')) throw new ArmError(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
    const token = checkToken(req.headers.authorization, url, aad);
    if (!token.ok) {
      res.setHeader('WWW-Authenticate', `Bearer authorization_uri="${url}/${o.tenantId}", error="invalid_token", error_description="${token.message}"`);
      throw new ArmError(401, token.code, token.message);
    }
    const parts = u.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0]?.toLowerCase() !== 'subscriptions' || parts[1]?.toLowerCase() !== sub) {
      throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${parts[1] ?? ''}' could not be found.`);
    }
    const lower = parts.map((p) => p.toLowerCase());
    if (lower[2] === 'providers' && lower[3] === 'microsoft.compute' && lower[4] === 'locations' && lower[6] === 'operations' && parts.length === 8) {
      return operation(req, res, parts[7]!, u);
    }
    if (lower[2] !== 'resourcegroups' || !parts[3]) throw new ArmError(404, 'InvalidResourceType', 'The resource type could not be found.');
    const rg = parts[3];
    if (!groups.has(rg.toLowerCase())) throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`);
    if (lower[4] !== 'providers' || lower[5] !== 'microsoft.compute') throw new ArmError(404, 'InvalidResourceType', 'The resource type could not be found.');
    if (lower[6] === 'images' && parts.length <= 8) return images(ctx, req, res, rg, parts[7]);
    if (lower[6] === 'galleries' && parts.length >= 10 && lower[8] === 'images') return gallery(ctx, req, res, rg, parts[7]!, parts[9]!, parts.slice(10));
    throw new ArmError(404, 'InvalidResourceType', `The resource type '${parts.slice(5, 7).join('/')}' could not be found.`);
  };

  const server: Server = createServer({ key: o.tls.key, cert: o.tls.cert }, (req, res) => {
    const u = new URL(req.url ?? '/', 'https://fake');
    let code: string | undefined;
    res.setHeader('x-ms-request-id', randomUUID());
    res.setHeader('x-ms-correlation-request-id', randomUUID());
    res.on('finish', () => {
      if (!u.pathname.includes('/oauth2/')) requests.push({ method: req.method ?? '', path: u.pathname, status: res.statusCode, code });
      stateFile?.touch();
    });
    (async () => {
      if (await handleAad(req, res, u, url, aad)) return;
      await arm(req, res, u);
    })().catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      req.resume();
      if (err instanceof ArmError) {
        code = err.code;
        return sendJson(res, err.status, { error: { code: err.code, message: err.message, ...(err.target ? { target: err.target } : {}) } });
      }
      if (err instanceof BodyTooLarge) return sendJson(res, 413, { error: { code: 'RequestEntityTooLarge', message: err.message } });
      code = 'InternalServerError';
      sendJson(res, 500, { error: { code: 'InternalServerError', message: `fake failure: ${(err as Error).message}` } });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
  });
  url = `https://${o.host ?? '127.0.0.1'}:${(server.address() as AddressInfo).port}`;

  return {
    url,
    authorityHost: url,
    resources: () => [...resources.values()],
    requests,
    tokensIssued: () => aad.issued,
    failNextCreate: (error = { code: 'InvalidVhd', message: 'The VHD could not be read (injected).' }) => {
      failNext = error;
    },
    expireTokens: () => {
      aad.notBefore = Math.floor(Date.now() / 1000) + 1;
    },
    stop: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await stateFile?.flush();
    },
  };
}

function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'Content-Length': 0 });
  res.end();
}
