// Fake Resource Manager v2: GET /v2/resource_groups[?name=] and GET /v2/resource_groups/{id},
// bearer token required, as @ibm-cloud/platform-services' ResourceManagerV2 calls them.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { sendJson } from './http.ts';
import { checkBearer } from './auth.ts';
import type { IamState } from './iam.ts';

export interface FakeResourceGroup {
  id: string;
  crn: string;
  account_id: string;
  name: string;
  state: 'ACTIVE';
  default: boolean;
  quota_id: string;
  created_at: string;
  updated_at: string;
}

export function makeResourceGroup(accountId: string, name: string, isDefault: boolean, id?: string): FakeResourceGroup {
  const rid = id ?? randomUUID().replaceAll('-', '');
  const now = new Date().toISOString();
  return {
    id: rid,
    crn: `crn:v1:bluemix:public:resource-controller::a/${accountId}::resource-group:${rid}`,
    account_id: accountId,
    name,
    state: 'ACTIVE',
    default: isDefault,
    quota_id: 'a3d7b8d01e261c24677937c29ab33f3c',
    created_at: now,
    updated_at: now,
  };
}

function rmError(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { message, status_code: status, error_code: code, transaction_id: randomUUID() });
}

export function handleResourceManager(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  iam: IamState,
  groups: FakeResourceGroup[],
): void {
  if (req.method !== 'GET') return rmError(res, 405, 'method_not_allowed', 'Method not allowed');
  const auth = checkBearer(req, iam);
  if (!auth.ok) return rmError(res, 401, 'not_authorized', auth.message);
  const rest = url.pathname.slice('/v2/resource_groups'.length);
  if (rest === '' || rest === '/') {
    const name = url.searchParams.get('name');
    const account = url.searchParams.get('account_id');
    const wantDefault = url.searchParams.get('default');
    const resources = groups.filter(
      (g) =>
        g.account_id === auth.accountId &&
        (name === null || g.name === name) &&
        (account === null || g.account_id === account) &&
        (wantDefault === null || String(g.default) === wantDefault),
    );
    return sendJson(res, 200, { resources });
  }
  const id = decodeURIComponent(rest.slice(1));
  const group = groups.find((g) => g.id === id && g.account_id === auth.accountId);
  if (!group) return rmError(res, 404, 'not_found', `Resource group with id ${id} was not found`);
  sendJson(res, 200, group);
}
