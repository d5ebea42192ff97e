import type { FileHandle } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { WriteBehind } from '../../workers/fetch/write-behind.ts';

/** A file handle that only counts datasync calls, each settled by hand. */
function fakeFile(fail = false) {
  const pending: Array<() => void> = [];
  const fh = {
    syncs: 0,
    datasync: () => {
      fh.syncs++;
      return new Promise<void>((resolve, reject) => pending.push(() => (fail ? reject(new Error('EIO: disk gone')) : resolve())));
    },
  };
  return { fh, handle: fh as unknown as FileHandle, settleAll: () => pending.splice(0).forEach((f) => f()) };
}

describe('WriteBehind', () => {
  it('starts a flush after every `every` bytes, one at a time, without waiting for it', async () => {
    const { fh, handle, settleAll } = fakeFile();
    const wb = new WriteBehind(handle, 10);
    wb.wrote(4);
    wb.wrote(4);
    expect(fh.syncs).toBe(0);
    wb.wrote(4); // 12 >= 10
    expect(fh.syncs).toBe(1);
    wb.wrote(20); // a flush is under way: none more
    expect(fh.syncs).toBe(1);
    settleAll();
    await wb.settle();
    wb.wrote(10);
    expect(fh.syncs).toBe(2);
    settleAll();
    await wb.settle();
  });

  it('reports a failed flush when settled', async () => {
    const { handle, settleAll } = fakeFile(true);
    const wb = new WriteBehind(handle, 1);
    wb.wrote(1);
    settleAll();
    await expect(wb.settle()).rejects.toThrow(/EIO/);
  });
});
