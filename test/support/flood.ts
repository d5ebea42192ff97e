// Hostile traffic for `farm serve`: many concurrent large unauthenticated POSTs, and what the
// service process paid for them, read from /proc (peak RSS, bytes it read through syscalls).

import { request } from 'node:http';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';

export interface FloodRequest {
  path: string;
  headers: Record<string, string>;
  /** Body bytes to offer; the server may answer and close before taking them all. */
  size: number;
  /** No Content-Length: the body goes chunked, so the server cannot refuse it by its declared size. */
  chunked?: boolean;
}

export interface FloodResult {
  /** Status per request, or the client's error code when the server answered nothing. */
  outcomes: Record<string, number>;
  ms: number;
}

const CHUNK = 1 << 20;
const slab = Buffer.alloc(CHUNK, 'x');

/** One POST whose body is written in 1 MiB slices, stopping as soon as the server has answered. */
export function post(base: string, r: FloodRequest, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve) => {
    const url = new URL(r.path, base);
    let answered = false;
    const req = request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', ...r.headers, ...(r.chunked ? {} : { 'content-length': String(r.size) }) }, timeout: timeoutMs },
      (res) => {
        answered = true;
        res.resume();
        res.on('end', () => resolve(String(res.statusCode)));
        res.on('error', () => resolve(String(res.statusCode)));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!answered) resolve(err.code ?? err.message);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    let sent = 0;
    const more = (): void => {
      while (sent < r.size && !answered && !req.destroyed) {
        const n = Math.min(CHUNK, r.size - sent);
        sent += n;
        if (!req.write(n === CHUNK ? slab : slab.subarray(0, n))) return void req.once('drain', more);
      }
      if (!req.destroyed) req.end();
    };
    more();
  });
}

/** Sends every request at once and tallies the outcomes. */
export async function flood(base: string, requests: FloodRequest[]): Promise<FloodResult> {
  const start = Date.now();
  const results = await Promise.all(requests.map((r) => post(base, r)));
  const outcomes: Record<string, number> = {};
  for (const o of results) outcomes[o] = (outcomes[o] ?? 0) + 1;
  return { outcomes, ms: Date.now() - start };
}

export interface ProcStats {
  /** Resident set now and its peak since the process started (VmRSS, VmHWM), bytes. */
  rss: number;
  peakRss: number;
  /** Bytes the process read through read(2)-like calls, sockets included (/proc/PID/io rchar). */
  readBytes: number;
}

export async function procStats(pid: number): Promise<ProcStats> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const io = await readFile(`/proc/${pid}/io`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peakRss: kib('VmHWM'), readBytes: Number(/^rchar:\s+(\d+)/m.exec(io)?.[1] ?? NaN) };
}

export const MiB = 1 << 20;

export interface RawConnection {
  socket: Socket;
  /** Sends more of the request; false once the server has closed or reset the connection. */
  write(data: string | Buffer): boolean;
  /** The answer's status line and headers, as soon as they arrive (rejects if the connection closes first). */
  head: Promise<string>;
  /** Resolves with everything received once it matches (rejects if the connection closes first). */
  until(pattern: RegExp): Promise<string>;
  /** Everything received, once the server closed the connection, and after how many ms. */
  closed: Promise<{ received: string; ms: number }>;
}

/** A hand-written HTTP/1.1 exchange over TCP, for what clients built for good behaviour will not send. */
export function rawConnection(port: number, first: string | Buffer): RawConnection {
  const started = Date.now();
  const socket = connect(port, '127.0.0.1');
  let received = '';
  let done = false;
  const closed = new Promise<{ received: string; ms: number }>((resolve) => socket.on('close', () => ((done = true), resolve({ received, ms: Date.now() - started }))));
  const head = new Promise<string>((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end >= 0) resolve(received.slice(0, end));
    });
    void closed.then(() => reject(new Error(`closed before an answer; received ${JSON.stringify(received)}`)));
  });
  head.catch(() => undefined);
  socket.on('error', () => undefined); // EPIPE/ECONNRESET once the server hung up: closed tells
  if (first.length) socket.write(first);
  return {
    socket,
    write: (data) => !done && !socket.destroyed && (socket.write(data), true),
    head,
    until: (pattern) =>
      new Promise((resolve, reject) => {
        const look = () => pattern.test(received) && resolve(received);
        look();
        socket.on('data', look);
        void closed.then(() => (look(), reject(new Error(`closed without ${pattern}; received ${JSON.stringify(received)}`))));
      }),
    closed,
  };
}
