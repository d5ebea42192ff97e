import { describe, expect, it } from 'vitest';
import { FarmError } from '../../src/core/errors.ts';
import type { CloudConfig } from '../../uploaders/openstack/config.ts';
import { authRequestBody, glanceBase, selectEndpoint, type CatalogService } from '../../uploaders/openstack/keystone.ts';

const catalog: CatalogService[] = [
  {
    type: 'identity',
    name: 'keystone',
    endpoints: [{ interface: 'public', region_id: 'RegionOne', url: 'https://k:5000/v3' }],
  },
  {
    type: 'image',
    name: 'glance',
    endpoints: [
      { interface: 'public', region_id: 'RegionOne', url: 'https://glance-one.example.org:9292' },
      { interface: 'internal', region_id: 'RegionOne', url: 'http://10.0.0.5:9292' },
      { interface: 'public', region_id: 'RegionTwo', url: 'https://glance-two.example.org/v2/' },
    ],
  },
];

function err(fn: () => unknown): FarmError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FarmError);
    return e as FarmError;
  }
  throw new Error('expected an error');
}

describe('selectEndpoint', () => {
  it('picks the interface and region asked for', () => {
    expect(selectEndpoint(catalog, { type: 'image', interface: 'public', region: 'RegionOne' }, 'c')).toBe('https://glance-one.example.org:9292');
    expect(selectEndpoint(catalog, { type: 'image', interface: 'internal', region: 'RegionOne' }, 'c')).toBe('http://10.0.0.5:9292');
    expect(selectEndpoint(catalog, { type: 'image', interface: 'public', region: 'RegionTwo' }, 'c')).toBe('https://glance-two.example.org/v2/');
    // One region offers internal, so no region is needed.
    expect(selectEndpoint(catalog, { type: 'image', interface: 'internal' }, 'c')).toBe('http://10.0.0.5:9292');
  });

  it('refuses to guess between regions', () => {
    const e = err(() => selectEndpoint(catalog, { type: 'image', interface: 'public' }, "cloud 'c'"));
    expect(e.message).toBe("cloud 'c' offers the image service in several regions (RegionOne, RegionTwo)");
    expect(e.hint).toContain('region_name');
  });

  it('says what the catalog has when the service, interface or region is missing', () => {
    expect(err(() => selectEndpoint(catalog, { type: 'volumev3', interface: 'public' }, "cloud 'c'")).hint).toBe('It lists: identity, image.');
    expect(err(() => selectEndpoint(catalog, { type: 'image', interface: 'admin' }, "cloud 'c'")).hint).toContain('public, internal');
    const region = err(() => selectEndpoint(catalog, { type: 'image', interface: 'public', region: 'RegionThree' }, "cloud 'c'"));
    expect(region.message).toContain('no image endpoint in region RegionThree');
    expect(region.hint).toContain('RegionOne, RegionTwo');
    expect(err(() => selectEndpoint([], { type: 'image', interface: 'public' }, "cloud 'c'")).hint).toContain('catalog is empty');
  });

  it('reads the older `region` field too', () => {
    const old: CatalogService[] = [{ type: 'image', endpoints: [{ interface: 'public', region: 'R', url: 'http://g' }] }];
    expect(selectEndpoint(old, { type: 'image', interface: 'public', region: 'R' }, 'c')).toBe('http://g');
  });
});

describe('glanceBase', () => {
  it('drops a version suffix and trailing slashes', () => {
    expect(glanceBase('https://g.example.org/v2/')).toBe('https://g.example.org');
    expect(glanceBase('https://g.example.org:9292/v2.16')).toBe('https://g.example.org:9292');
    expect(glanceBase('https://cloud.example.org/image/')).toBe('https://cloud.example.org/image');
  });
});

const base = { cloud: 'c', source: 'f', authUrl: 'https://k/v3', interface: 'public' as const };

describe('authRequestBody', () => {
  it('scopes password auth to the project, with domains by id or name', () => {
    const config: CloudConfig = {
      ...base,
      auth: { type: 'password', username: 'farm', userDomainId: 'default', password: 'pw', projectName: 'farm', projectDomainName: 'Proj' },
    };
    expect(authRequestBody(config)).toEqual({
      auth: {
        identity: { methods: ['password'], password: { user: { name: 'farm', domain: { id: 'default' }, password: 'pw' } } },
        scope: { project: { name: 'farm', domain: { name: 'Proj' } } },
      },
    });
    const byId: CloudConfig = { ...base, auth: { type: 'password', userId: 'u1', password: 'pw', projectId: 'p1' } };
    expect(authRequestBody(byId)).toEqual({
      auth: { identity: { methods: ['password'], password: { user: { id: 'u1', password: 'pw' } } }, scope: { project: { id: 'p1' } } },
    });
  });

  it('sends application credentials by id, or by name with their user, and no scope', () => {
    expect(authRequestBody({ ...base, auth: { type: 'application_credential', id: 'ac', secret: 's' } })).toEqual({
      auth: { identity: { methods: ['application_credential'], application_credential: { id: 'ac', secret: 's' } } },
    });
    expect(
      authRequestBody({ ...base, auth: { type: 'application_credential', name: 'n', secret: 's', username: 'farm', userDomainId: 'default' } }),
    ).toEqual({
      auth: {
        identity: {
          methods: ['application_credential'],
          application_credential: { name: 'n', secret: 's', user: { name: 'farm', domain: { id: 'default' } } },
        },
      },
    });
  });
});
