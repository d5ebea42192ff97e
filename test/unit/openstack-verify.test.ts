import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyStored } from '../../uploaders/openstack/verify.ts';

const data = Buffer.from('disk image bytes');
const sha512 = createHash('sha512').update(data).digest('hex');
const sent = { bytes: data.length, sha512 };
const stored = { size: data.length, os_hash_algo: 'sha512', os_hash_value: sha512 };

describe('verifyStored', () => {
  it("accepts Glance's record when size and sha512 match what was sent", () => {
    expect(() => verifyStored(stored, sent, data.length)).not.toThrow();
    expect(() => verifyStored({ ...stored, os_hash_value: sha512.toUpperCase() }, sent, data.length)).not.toThrow();
  });

  it('refuses a different sha512, size, or a short send', () => {
    const other = createHash('sha512').update('other').digest('hex');
    expect(() => verifyStored({ ...stored, os_hash_value: other }, sent, data.length)).toThrow(
      "Glance's sha512 of the image differs from the sha512 of the data sent",
    );
    expect(() => verifyStored({ ...stored, size: data.length - 1 }, sent, data.length)).toThrow(
      `Glance stored ${data.length - 1} bytes but ${data.length} were sent`,
    );
    expect(() => verifyStored(stored, sent, data.length + 1)).toThrow(`sent ${data.length} bytes but the artifact has ${data.length + 1}`);
  });

  it('cannot verify without a sha512 from Glance, and says why', () => {
    expect(() => verifyStored({ ...stored, os_hash_algo: 'sha256' }, sent, data.length)).toThrow('os_hash_algo sha256');
    expect(() => verifyStored({ size: data.length, os_hash_algo: null, os_hash_value: null }, sent, data.length)).toThrow('os_hash_algo unset');
  });
});
