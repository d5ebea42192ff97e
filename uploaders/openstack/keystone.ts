// A small Keystone v3 client: a project-scoped token from a password or an application
// credential (POST /v3/auth/tokens), refreshed before it expires, and endpoint selection from the
// token's service catalog. Hand-written on purpose: there is no maintained OpenStack SDK for
// Node (pkgcloud, the best known, is unmaintained), and the two calls farm needs are small.

import { FarmError } from '../../src/core/errors.ts';
import { cloudLabel, principal, type AppCredentialAuth, type CloudConfig, type Interface, type PasswordAuth } from './config.ts';
import { OpenStackHttpError, type Http } from './http.ts';
import type { Redactor } from './redact.ts';

export interface CatalogEndpoint {
  id?: string;
  interface: string;
  region?: string | null;
  region_id?: string | null;
  url: string;
}

export interface CatalogService {
  type: string;
  name?: string;
  endpoints: CatalogEndpoint[];
}

export interface Token {
  value: string;
  expiresAt: number;
  projectId: string;
  projectName?: string;
  catalog: CatalogService[];
}

// Re-authenticate when less than this is left: an upload's requests must not start with a token
// about to expire.
const REFRESH_MARGIN_MS = 5 * 60_000;

function domain(name: string | undefined, id: string | undefined): { id: string } | { name: string } | undefined {
  if (id) return { id };
  if (name) return { name };
  return undefined;
}

function user(a: PasswordAuth | AppCredentialAuth): Record<string, unknown> {
  if (a.userId) return { id: a.userId };
  return { name: a.username, domain: domain(a.userDomainName, a.userDomainId) };
}

/** The body of POST /v3/auth/tokens. */
export function authRequestBody(config: CloudConfig): unknown {
  const a = config.auth;
  if (a.type === 'application_credential') {
    // An application credential carries its own project scope; a scope here is refused.
    const cred: Record<string, unknown> = { secret: a.secret };
    if (a.id) cred.id = a.id;
    else {
      cred.name = a.name;
      cred.user = user(a);
    }
    return { auth: { identity: { methods: ['application_credential'], application_credential: cred } } };
  }
  const project = a.projectId
    ? { id: a.projectId }
    : { name: a.projectName, domain: domain(a.projectDomainName, a.projectDomainId) };
  return {
    auth: {
      identity: { methods: ['password'], password: { user: { ...user(a), password: a.password } } },
      scope: { project },
    },
  };
}

interface TokenResponse {
  token?: {
    expires_at?: string;
    project?: { id: string; name?: string };
    catalog?: CatalogService[];
  };
}

export class Keystone {
  private token: Token | undefined;
  private pending: Promise<Token> | undefined;

  constructor(
    private readonly config: CloudConfig,
    private readonly http: Http,
    private readonly redactor: Redactor,
    private readonly now: () => number = Date.now,
  ) {}

  /** A valid token, issuing a new one when there is none or it is about to expire. */
  async getToken(signal: AbortSignal): Promise<Token> {
    if (this.token && this.token.expiresAt - this.now() > REFRESH_MARGIN_MS) return this.token;
    this.pending ??= this.issue(signal).finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async issue(signal: AbortSignal): Promise<Token> {
    const label = `${cloudLabel(this.config)} (${principal(this.config)})`;
    let res: Response;
    try {
      res = await this.http.request({
        method: 'POST',
        url: `${this.config.authUrl}/auth/tokens`,
        what: `Keystone authentication for ${label}`,
        json: authRequestBody(this.config),
        expect: [201],
        retry: 'all',
        signal,
      });
    } catch (err) {
      if (err instanceof OpenStackHttpError && err.status === 401) {
        throw new FarmError('UPLOAD', `Keystone refused the credentials for ${label}`, {
          hint: `Check the ${this.config.auth.type === 'password' ? 'password, user and project' : 'application credential id and secret'} in ${this.config.source}; \`openstack${this.config.cloud === 'envvars' ? '' : ` --os-cloud ${this.config.cloud}`} token issue\` shows the same answer.`,
        });
      }
      throw err;
    }
    const value = res.headers.get('x-subject-token');
    const body = (await res.json()) as TokenResponse;
    if (!value || !body.token) throw new FarmError('UPLOAD', `Keystone answered ${label} without a token`);
    this.redactor.add(value);
    const project = body.token.project;
    if (!project) {
      throw new FarmError('UPLOAD', `Keystone issued an unscoped token for ${label}`, {
        hint: 'Name a project (project_name or project_id); Glance needs a project-scoped token.',
      });
    }
    const expires = Date.parse(body.token.expires_at ?? '');
    this.token = {
      value,
      expiresAt: Number.isNaN(expires) ? this.now() + 3_600_000 : expires,
      projectId: project.id,
      projectName: project.name,
      catalog: body.token.catalog ?? [],
    };
    return this.token;
  }
}

/**
 * The URL of a service from the catalog: the endpoint of `type` with the wanted interface and,
 * if given, region. Without a region, several regions are ambiguous and an error.
 */
export function selectEndpoint(
  catalog: readonly CatalogService[],
  want: { type: string; interface: Interface; region?: string },
  label: string,
): string {
  const services = catalog.filter((s) => s.type === want.type);
  if (!services.length) {
    const types = [...new Set(catalog.map((s) => s.type))].sort();
    throw new FarmError('UPLOAD', `the service catalog of ${label} has no ${want.type} service`, {
      hint: types.length ? `It lists: ${types.join(', ')}.` : 'The catalog is empty: is the token scoped to a project?',
    });
  }
  const all = services.flatMap((s) => s.endpoints);
  const regionOf = (e: CatalogEndpoint) => e.region_id ?? e.region ?? '';
  const byInterface = all.filter((e) => e.interface === want.interface);
  if (!byInterface.length) {
    throw new FarmError('UPLOAD', `${label} has no ${want.interface} endpoint for the ${want.type} service`, {
      hint: `Interfaces offered: ${[...new Set(all.map((e) => e.interface))].join(', ')}; set interface in the cloud's settings.`,
    });
  }
  const candidates = want.region ? byInterface.filter((e) => regionOf(e) === want.region) : byInterface;
  if (!candidates.length) {
    throw new FarmError('UPLOAD', `${label} has no ${want.type} endpoint in region ${want.region}`, {
      hint: `Regions offered: ${[...new Set(byInterface.map(regionOf))].join(', ')}; set region_name accordingly.`,
    });
  }
  const regions = [...new Set(candidates.map(regionOf))];
  if (regions.length > 1) {
    throw new FarmError('UPLOAD', `${label} offers the ${want.type} service in several regions (${regions.join(', ')})`, {
      hint: 'Set region_name in clouds.yaml (or OS_REGION_NAME) to choose one.',
    });
  }
  return candidates[0]!.url;
}

/** Glance's base URL without a version suffix (catalogs list both "…:9292" and "…:9292/v2"). */
export function glanceBase(url: string): string {
  return url.replace(/\/+$/, '').replace(/\/v2(\.\d+)?$/, '');
}
