import { describe, expect, it } from 'vitest';
import { parseVolumeXml } from '../../uploaders/libvirt/volume-xml.ts';
import { CONTROL_PERSIST_S, wrapperScript } from '../../uploaders/libvirt/ssh-wrapper.ts';

// As libvirt 9.0 writes it for a dir pool (checked on the lab hypervisor).
const RAW = `<volume type='file'>
  <name>farm-x</name>
  <key>/var/lib/libvirt/images/farm-x</key>
  <capacity unit='bytes'>268435456</capacity>
  <allocation unit='bytes'>4296704</allocation>
  <physical unit='bytes'>268435456</physical>
  <target>
    <path>/var/lib/libvirt/images/farm-x</path>
    <format type='raw'/>
    <permissions>
      <mode>0600</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
  </target>
</volume>
`;

describe('vol-dumpxml', () => {
  it('reads capacity, physical size and the target path', () => {
    expect(parseVolumeXml('farm-x', RAW)).toEqual({ name: 'farm-x', path: '/var/lib/libvirt/images/farm-x', capacity: 268435456, physical: 268435456 });
  });

  it("takes the volume's own path, not its backing store's", () => {
    const xml = RAW.replace('</target>', "</target>\n  <backingStore>\n    <path>/var/lib/libvirt/images/base</path>\n  </backingStore>");
    expect(parseVolumeXml('farm-x', xml)?.path).toBe('/var/lib/libvirt/images/farm-x');
  });

  it('decodes the entities libvirt writes, and refuses a stray &', () => {
    expect(parseVolumeXml('v', RAW.replace('<path>/var/lib/libvirt/images/farm-x', '<path>/p/a&amp;b&#39;c'))?.path).toBe("/p/a&b'c");
    expect(parseVolumeXml('v', RAW.replace('<path>/var/lib/libvirt/images/farm-x', '<path>/p/a&b'))).toBeUndefined();
  });

  it('leaves physical undefined when an old libvirt omits it', () => {
    expect(parseVolumeXml('farm-x', RAW.replace(/ *<physical[^\n]*\n/, ''))?.physical).toBeUndefined();
  });

  it('refuses what is not a volume, sizes in other units, a missing path or capacity', () => {
    expect(parseVolumeXml('v', '<pool type="dir"></pool>')).toBeUndefined();
    expect(parseVolumeXml('v', RAW.replace("<capacity unit='bytes'>268435456", "<capacity unit='KiB'>262144"))).toBeUndefined();
    expect(parseVolumeXml('v', RAW.replace(/<path>.*<\/path>/, ''))).toBeUndefined();
    expect(parseVolumeXml('v', RAW.replace(/ *<capacity[^\n]*\n/, ''))).toBeUndefined();
  });
});

describe('ssh wrapper connection sharing', () => {
  const spec = { ssh: 'ssh', knownHosts: '/k h', hostKeyAlgorithms: undefined, identityOnly: true, connectTimeoutS: 10, keepaliveS: 15 };

  it('makes the first ssh a short-lived master on a socket in the given path', () => {
    const s = wrapperScript({ ...spec, controlPath: '/tmp/farm-libvirt-x/cm-%C' });
    expect(s).toContain(`-o 'ControlMaster=auto' -o 'ControlPath="/tmp/farm-libvirt-x/cm-%C"' -o 'ControlPersist=${CONTROL_PERSIST_S}'`);
    expect(CONTROL_PERSIST_S).toBeLessThanOrEqual(30);
    // Host key checking stays first and forced on.
    expect(s).toContain("exec ssh -o 'BatchMode=yes' -o 'StrictHostKeyChecking=yes'");
  });

  it('shares nothing without a control path', () => {
    expect(wrapperScript(spec)).not.toMatch(/Control/);
  });
});
