// A refusal sent before the body is read reaches a client that is still sending, and the service
// does not read that body: it closes its side, discards at most LINGER_BYTES for LINGER_MS, and
// the connection then goes whatever the client does.
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LINGER_BYTES, LINGER_MS, send } from '../../src/service/reply.ts';

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

function listen(): Promise<number> {
  server = createServer((_req, res) => send(res, 401, 'refused\n', 'text/plain'));
  return new Promise((resolve) => server!.listen(0, '127.0.0.1', () => resolve((server!.address() as { port: number }).port)));
}

/** Announces a 64 MiB body and keeps sending it (64 KiB every 5 ms) until the connection ends. */
function floodingPost(port: number): Promise<{ received: string; sent: number; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const c = connect(port, '127.0.0.1');
    let received = '';
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    c.on('connect', () => {
      c.write(`POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: ${64 << 20}\r\n\r\n`);
      timer = setInterval(() => {
        if (!c.writable || sent >= 64 << 20) return;
        c.write(Buffer.alloc(64 << 10, 0x61));
        sent += 64 << 10;
      }, 5);
    });
    c.on('data', (d: Buffer) => (received += d.toString('latin1')));
    const done = () => {
      clearInterval(timer);
      resolve({ received, sent, ms: Date.now() - t0 });
    };
    c.on('error', done);
    c.on('close', done);
  });
}

describe('answers sent before the body', () => {
  it('reach a client that keeps sending, and the connection ends within the linger bounds', async () => {
    const port = await listen();
    const r = await floodingPost(port);
    expect(r.received).toMatch(/^HTTP\/1\.1 401 /);
    expect(r.received).toMatch(/connection: close/i);
    // Ended by the bound (bytes or time), long before the 64 MiB the client announced.
    expect(r.ms).toBeLessThan(LINGER_MS + 3000);
    expect(r.sent).toBeLessThan(16 << 20);
    expect(LINGER_BYTES).toBeLessThanOrEqual(1 << 20);
  });
});
