import { describe, expect, it } from 'vitest';
import { bibArgs, buildImageRef, remoteOutputRoot } from '../../workers/bib/bib-builder.ts';
import { parseDfAvailable } from '../../workers/probe.ts';
import { builderRuns } from '../../workers/bib/layout.ts';

describe('bib command line', () => {
  it('repeats --type and ends with the image ref, as bib expects', () => {
    expect(bibArgs(['ami', 'qcow2'], 'xfs', ['--use-librepo=True'], 'localhost/farm-build:x')).toEqual([
      '--type', 'ami', '--type', 'qcow2', '--rootfs', 'xfs', '--progress', 'verbose', '--use-librepo=True', 'localhost/farm-build:x',
    ]);
  });
  it('tags each build uniquely and keeps outputs under output_dir', () => {
    expect(buildImageRef('20261121t101500z', 's390x', 'w1')).toBe('localhost/farm-build:20261121t101500z-s390x-w1');
    // Two worker entries on one host get their own tags; a name too long for a tag is digested.
    const long = buildImageRef('20261121t101500z', 's390x', 'w'.repeat(200));
    expect(long).toMatch(/^localhost\/farm-build:20261121t101500z-s390x-[0-9a-f]{16}$/);
    expect(buildImageRef('20261121t101500z', 's390x', 'x'.repeat(200))).not.toBe(long);
    expect(remoteOutputRoot('/var/lib/farm/output', '20261121t101500z', 's390x')).toBe('/var/lib/farm/output/20261121t101500z/s390x');
    expect(() => remoteOutputRoot('/var/lib/farm/output', '../..', '..')).toThrow();
  });
});

describe('probe', () => {
  it('reads available bytes from df -Pk', () => {
    const out = 'Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 263174212 23000000 83886080 22% /\n/dev/vdb 1000 10 990 1% /var/lib/farm\n';
    expect(parseDfAvailable(out)).toEqual([83886080 * 1024, 990 * 1024]);
  });
});

describe('builder runs (bib output layout)', () => {
  it('ami and raw go to separate builder runs so neither disk.raw is lost', () => {
    expect(builderRuns(['ami', 'raw'])).toEqual([['ami'], ['raw']]);
    expect(builderRuns(['ami', 'qcow2', 'raw'])).toEqual([['ami', 'qcow2'], ['raw']]);
    expect(builderRuns(['qcow2'])).toEqual([['qcow2']]);
    expect(builderRuns(['ami', 'raw', 'gce'])).toEqual([['ami', 'gce'], ['raw']]);
  });
});
