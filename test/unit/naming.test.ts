import { describe, expect, it } from 'vitest';
import { buildIdDate, isBuildId, makeBuildId, renderName } from '../../src/naming.ts';

describe('build ids', () => {
  it('are the UTC start time, lower-case and sortable', () => {
    const id = makeBuildId(new Date(Date.UTC(2026, 10, 21, 10, 15, 0)));
    expect(id).toBe('20261121t101500z');
    expect(isBuildId(id)).toBe(true);
    expect(isBuildId(`${id}-2`)).toBe(true);
    expect(isBuildId('2026-11-21')).toBe(false);
    expect(buildIdDate(id).toISOString()).toBe('2026-11-21T10:15:00.000Z');
    expect(makeBuildId(new Date(Date.UTC(2026, 0, 2, 3, 4, 5))) < makeBuildId(new Date(Date.UTC(2026, 0, 2, 3, 4, 6)))).toBe(true);
  });
});

describe('image names', () => {
  const fields = { name: 'copr-builder', arch: 'aarch64' as const, buildId: '20261121t101500z' };
  it('default template gives <name>-YYYYmmdd-HHMMSS-<arch>', () => {
    expect(renderName('{name}-{date}-{time}-{arch}', fields)).toBe('copr-builder-20261121-101500-aarch64');
  });
  it("renders Copr's AWS and libvirt conventions", () => {
    expect(renderName('copr-builder-image-bootc-{date}-{time}-{arch}', fields)).toBe('copr-builder-image-bootc-20261121-101500-aarch64');
    expect(renderName('copr-builder-{arch}-{date}_{time}', fields)).toBe('copr-builder-aarch64-20261121_101500');
    expect(renderName('{build_id}', fields)).toBe('20261121t101500z');
  });
  it('rejects unknown fields instead of leaving them in names', () => {
    expect(() => renderName('{name}-{version}', fields)).toThrow(/unknown field \{version\}/);
  });
});
