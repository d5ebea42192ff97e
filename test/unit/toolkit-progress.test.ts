// The one progress throttle (uploaders/toolkit/progress.ts).

import { describe, expect, it } from 'vitest';
import type { UploadProgress } from '../../uploaders/uploader.ts';
import { Progress, throttle } from '../../uploaders/toolkit/progress.ts';

describe('throttle', () => {
  it('emits at most once per interval, but always on a key change, a final update or force', () => {
    let t = 0;
    const out: string[] = [];
    const emit = throttle((p: { phase: string; n: number }) => out.push(`${p.phase}${p.n}`), {
      intervalMs: 100,
      isFinal: (p) => p.n >= 10,
      now: () => t,
    });
    emit({ phase: 'u', n: 1 }); // first: emitted
    t = 50;
    emit({ phase: 'u', n: 2 }); // too soon
    t = 99;
    emit({ phase: 'u', n: 3 }); // too soon
    t = 100;
    emit({ phase: 'u', n: 4 }); // interval passed
    t = 110;
    emit({ phase: 'register', n: 5 }); // phase change
    emit({ phase: 'register', n: 6 }); // too soon
    emit({ phase: 'register', n: 7 }, true); // forced
    emit({ phase: 'register', n: 10 }); // final
    expect(out).toEqual(['u1', 'u4', 'register5', 'register7', 'register10']);
  });
});

describe('Progress', () => {
  it('keeps the last bytes sent when an update omits them, and does nothing without a listener', () => {
    let t = 0;
    const seen: UploadProgress[] = [];
    const p = new Progress((x) => seen.push(x), 100, 500, () => t);
    p.report(10, 10, 'upload');
    t = 1000;
    p.report(100, undefined, 'register');
    expect(seen).toEqual([
      { done: 10, total: 100, sent: 10, phase: 'upload' },
      { done: 100, total: 100, sent: 10, phase: 'register' },
    ]);
    expect(() => new Progress(undefined, 1).report(1, 1, 'x')).not.toThrow();
  });
});
