// A program that exits without reading the input the farm gives it (a notify command that
// ignores stdin): its exit status answers, and the failed write is not an uncaught EPIPE.
import { describe, expect, it } from 'vitest';
import { start } from '../../src/core/process.ts';

describe('input to a program that does not read it', () => {
  it('ends with its exit status and no uncaught EPIPE', async () => {
    const uncaught: unknown[] = [];
    const onErr = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onErr);
    try {
      for (let i = 0; i < 10; i++) {
        const r = await start(['sh', '-c', 'exit 3'], { input: 'x'.repeat(4 << 20) }).done;
        expect(r.code).toBe(3);
      }
      await new Promise((r) => setTimeout(r, 200));
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onErr);
    }
  });
});
