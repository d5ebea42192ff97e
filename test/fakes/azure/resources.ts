// The fake's Microsoft.Compute resources: managed images (create, get, list, delete) and gallery
// image definitions (get) and versions (create, get, list, delete). Creates and deletes start
// long-running operations (server.ts answers their Azure-AsyncOperation polls).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody, sendJson } from '../ibm/http.ts';
import { ArmError, type FakeResource } from './compute.ts';

/** What the handlers need of the server. */
export interface ComputeContext {
  resources: Map<string, FakeResource>;
  rgId(rg: string): string;
  view(r: FakeResource): unknown;
  startCreate(res: ServerResponse, id: string, resource: FakeResource, blobUri: string): Promise<void>;
  startDelete(res: ServerResponse, id: string): void;
  storageAccountOf(accountId: string): string | undefined;
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,78}[A-Za-z0-9_])?$/;
const INT32 = 2 ** 31 - 1;
const versionOk = (v: string) => {
  const p = v.split('.');
  return p.length === 3 && p.every((x) => /^\d{1,10}$/.test(x) && Number(x) <= INT32);
};

const json = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
  const text = await readBody(req);
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // falls through
  }
  throw new ArmError(400, 'InvalidRequestContent', 'The request content was invalid and could not be deserialized.');
};
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const tagsOf = (v: unknown): Record<string, string> => {
  const t = obj(v);
  for (const [k, val] of Object.entries(t)) {
    if (typeof val !== 'string' || k.length > 512 || /[<>%&\\?/]/.test(k)) throw new ArmError(400, 'InvalidTagNameCharacters', `The tag name '${k}' has characters that are not allowed.`);
  }
  return t as Record<string, string>;
};

/** PATCH of an image or version: the fake updates tags only (what the farm's lifecycle changes);
 *  ARM answers the updated resource. Any other property in the body is refused, not ignored. */
async function patchTags(c: ComputeContext, req: IncomingMessage, res: ServerResponse, existing: FakeResource | undefined, what: string, rg: string): Promise<void> {
  if (!existing) throw new ArmError(404, 'ResourceNotFound', `The Resource '${what}' under resource group '${rg}' was not found.`);
  const body = await json(req);
  const props = obj(body.properties);
  if (Object.keys(props).length) throw new ArmError(400, 'InvalidParameter', 'the fake updates tags only', 'properties');
  if (body.tags !== undefined) existing.tags = tagsOf(body.tags);
  return sendJson(res, 200, c.view(existing));
}

export async function images(c: ComputeContext, req: IncomingMessage, res: ServerResponse, rg: string, name: string | undefined): Promise<void> {
  const base = `${c.rgId(rg)}/providers/Microsoft.Compute/images`;
  if (name === undefined) {
    if (req.method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', 'The method is not allowed.');
    const prefix = `${base}/`.toLowerCase();
    return sendJson(res, 200, { value: [...c.resources.values()].filter((r) => r.id.toLowerCase().startsWith(prefix) && r.type === 'Microsoft.Compute/images').map(c.view) });
  }
  const id = `${base}/${name}`;
  const existing = c.resources.get(id.toLowerCase());
  if (req.method === 'GET') {
    if (!existing) throw new ArmError(404, 'ResourceNotFound', `The Resource 'Microsoft.Compute/images/${name}' under resource group '${rg}' was not found.`);
    return sendJson(res, 200, c.view(existing));
  }
  if (req.method === 'DELETE') return c.startDelete(res, id);
  if (req.method === 'PATCH') return patchTags(c, req, res, existing, `Microsoft.Compute/images/${name}`, rg);
  if (req.method !== 'PUT') throw new ArmError(405, 'MethodNotAllowed', 'The method is not allowed.');
  const body = await json(req);
  if (!NAME.test(name)) throw new ArmError(400, 'InvalidResourceName', `Resource name ${name} is invalid. The name can be up to 80 characters long. It must begin with a word character, and it must end with a word character or with '_'. The name may contain word characters or '.', '-', '_'.`);
  if (typeof body.location !== 'string' || !body.location) throw new ArmError(400, 'LocationRequired', 'The location property is required for this definition.');
  const props = obj(body.properties);
  const gen = props.hyperVGeneration ?? 'V1';
  if (gen !== 'V1' && gen !== 'V2') throw new ArmError(400, 'InvalidParameter', `The value '${String(gen)}' of parameter 'hyperVGeneration' is not allowed.`, 'hyperVGeneration');
  const osDisk = obj(obj(props.storageProfile).osDisk);
  if (osDisk.osType !== 'Linux' && osDisk.osType !== 'Windows') throw new ArmError(400, 'InvalidParameter', "Required parameter 'osType' is missing or invalid.", 'osDisk.osType');
  if (osDisk.osState !== 'Generalized' && osDisk.osState !== 'Specialized') throw new ArmError(400, 'InvalidParameter', "Required parameter 'osState' is missing or invalid.", 'osDisk.osState');
  if (typeof osDisk.blobUri !== 'string') throw new ArmError(400, 'InvalidParameter', 'The image has no source: set blobUri, snapshot or managedDisk.', 'osDisk.blobUri');
  // A managed image's source cannot change: a second PUT under the name is refused.
  if (existing) throw new ArmError(409, 'PropertyChangeNotAllowed', `Changing property 'osDisk.blobUri' is not allowed: an image named '${name}' exists already.`, 'osDisk.blobUri');
  const resource: FakeResource = {
    id,
    name,
    type: 'Microsoft.Compute/images',
    location: body.location,
    tags: tagsOf(body.tags),
    properties: { storageProfile: { osDisk: { ...osDisk, caching: 'ReadWrite' }, dataDisks: [], zoneResilient: false }, provisioningState: 'Creating', hyperVGeneration: gen },
  };
  return c.startCreate(res, id, resource, osDisk.blobUri);
}

export async function gallery(c: ComputeContext, req: IncomingMessage, res: ServerResponse, rg: string, g: string, def: string, rest: string[]): Promise<void> {
  const defId = `${c.rgId(rg)}/providers/Microsoft.Compute/galleries/${g}/images/${def}`;
  const definition = c.resources.get(defId.toLowerCase());
  if (!c.resources.get(`${c.rgId(rg)}/providers/Microsoft.Compute/galleries/${g}`.toLowerCase())) {
    throw new ArmError(404, 'ResourceNotFound', `The Resource 'Microsoft.Compute/galleries/${g}' under resource group '${rg}' was not found.`);
  }
  if (!definition) throw new ArmError(404, 'ResourceNotFound', `The Resource 'Microsoft.Compute/galleries/${g}/images/${def}' under resource group '${rg}' was not found.`);
  if (rest.length === 0) {
    if (req.method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', 'Only GET of image definitions is faked.');
    return sendJson(res, 200, c.view(definition));
  }
  if (rest[0]?.toLowerCase() !== 'versions' || rest.length > 2) throw new ArmError(404, 'InvalidResourceType', 'The resource type could not be found.');
  if (rest.length === 1) {
    if (req.method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', 'The method is not allowed.');
    const prefix = `${defId}/versions/`.toLowerCase();
    return sendJson(res, 200, { value: [...c.resources.values()].filter((r) => r.id.toLowerCase().startsWith(prefix)).map(c.view) });
  }
  const v = rest[1]!;
  const id = `${defId}/versions/${v}`;
  const existing = c.resources.get(id.toLowerCase());
  if (req.method === 'GET') {
    if (!existing) throw new ArmError(404, 'ResourceNotFound', `The Resource 'Microsoft.Compute/galleries/${g}/images/${def}/versions/${v}' under resource group '${rg}' was not found.`);
    return sendJson(res, 200, c.view(existing));
  }
  if (req.method === 'DELETE') return c.startDelete(res, id);
  if (req.method === 'PATCH') return patchTags(c, req, res, existing, `Microsoft.Compute/galleries/${g}/images/${def}/versions/${v}`, rg);
  if (req.method !== 'PUT') throw new ArmError(405, 'MethodNotAllowed', 'The method is not allowed.');
  const body = await json(req);
  if (!versionOk(v)) throw new ArmError(400, 'InvalidParameter', `The gallery image version name '${v}' is invalid: it must be Major(int32).Minor(int32).Patch(int32).`, 'galleryImageVersionName');
  if (typeof body.location !== 'string' || body.location.toLowerCase() !== definition.location.toLowerCase()) {
    throw new ArmError(400, 'InvalidParameter', `The version's location must be the gallery's, '${definition.location}'.`, 'location');
  }
  const props = obj(body.properties);
  const source = obj(obj(obj(props.storageProfile).osDiskImage).source);
  if (typeof source.uri !== 'string') throw new ArmError(400, 'InvalidParameter', 'The version has no source: set storageProfile.osDiskImage.source.uri.', 'source.uri');
  if (typeof source.storageAccountId !== 'string' || !c.storageAccountOf(source.storageAccountId)) {
    throw new ArmError(400, 'InvalidParameter', `The storage account '${String(source.storageAccountId)}' of the VHD source was not found.`, 'source.storageAccountId');
  }
  if (existing) throw new ArmError(409, 'Conflict', `Gallery image version '${v}' exists already; versions are immutable.`);
  const regions = (Array.isArray(obj(props.publishingProfile).targetRegions) ? (obj(props.publishingProfile).targetRegions as unknown[]) : []).map((r) => ({ name: String(obj(r).name), regionalReplicaCount: 1, storageAccountType: 'Standard_LRS' }));
  const resource: FakeResource = {
    id,
    name: v,
    type: 'Microsoft.Compute/galleries/images/versions',
    location: body.location,
    tags: tagsOf(body.tags),
    properties: {
      publishingProfile: { targetRegions: regions.length ? regions : [{ name: body.location, regionalReplicaCount: 1, storageAccountType: 'Standard_LRS' }], replicaCount: 1, excludeFromLatest: false, publishedDate: new Date().toISOString(), storageAccountType: 'Standard_LRS' },
      storageProfile: { osDiskImage: { source: { uri: source.uri, storageAccountId: source.storageAccountId }, hostCaching: 'ReadOnly' } },
      provisioningState: 'Creating',
    },
  };
  return c.startCreate(res, id, resource, source.uri);
}
