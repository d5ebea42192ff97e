// Podman's build and pull endpoints answer with a stream of JSON objects, one per line.

import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import { FarmError } from '../../src/core/errors.ts';

export async function followJsonStream(
  stream: Readable,
  signal: AbortSignal,
  onMessage: (msg: Record<string, unknown>) => void,
): Promise<void> {
  const onAbort = () => stream.destroy(new FarmError('ABORTED', 'cancelled'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    for await (const line of lines) {
      if (!line.trim()) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        msg = { stream: line };
      }
      onMessage(msg);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (signal.aborted) throw new FarmError('ABORTED', 'cancelled');
}
