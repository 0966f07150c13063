import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';

/**
 * Requests `fetch` cannot make: a GET with a body (as a `Response`, for the parity suite), and a
 * client that sends its request slowly, a few bytes at a time, for a bounded time.
 */

/** Any method with any body, answered as a fetch `Response` (no redirect is followed). */
export function rawRequest(
  url: string,
  init: { method: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<Response> {
  return new Promise((resolve, reject) => {
    // Node's client sends a GET body without a length unless told: the server would read it as the next request.
    const length =
      init.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(init.body)) };
    const req = httpRequest(
      url,
      { method: init.method, headers: { ...length, ...init.headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const headers = new Headers();
          for (let i = 0; i < res.rawHeaders.length; i += 2)
            headers.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
          const status = res.statusCode ?? 0;
          const body =
            status === 204 || status === 304 || init.method === 'HEAD'
              ? null
              : Buffer.concat(chunks);
          resolve(new Response(body, { status, headers }));
        });
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

export interface SlowAnswer {
  /** The status the server answered with, if it answered before closing. */
  status?: number;
  /** Whether the server closed the connection before the client gave up. */
  closed: boolean;
  /** Milliseconds from the first byte sent to the close (or to giving up). */
  elapsedMs: number;
}

/**
 * Sends `head` (request line and headers, up to and including the blank line unless `slowHead`) at
 * once or slowly, then `body` `bytesPerTick` bytes every `tickMs`, and gives up after `giveUpMs`.
 * `stallAfter`: stop sending after that many body bytes (a client that goes quiet).
 */
export function slowRequest(
  url: string,
  opts: {
    head: string;
    body?: string;
    slowHead?: boolean;
    tickMs?: number;
    bytesPerTick?: number;
    giveUpMs: number;
    stallAfter?: number;
  },
): Promise<SlowAnswer> {
  const { port, hostname } = new URL(url);
  const tickMs = opts.tickMs ?? 100;
  const step = opts.bytesPerTick ?? 1;
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect(Number(port), hostname);
    let received = '';
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      clearTimeout(giveUp);
      socket.destroy();
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(received);
      resolve({
        status: match ? Number(match[1]) : undefined,
        closed,
        elapsedMs: Date.now() - started,
      });
    };
    const giveUp = setTimeout(() => finish(false), opts.giveUpMs);
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('connect', () => {
      let pending = opts.slowHead ? opts.head + (opts.body ?? '') : (opts.body ?? '');
      if (!opts.slowHead) socket.write(opts.head);
      let sent = 0;
      timer = setInterval(() => {
        if (pending === '' || (opts.stallAfter !== undefined && sent >= opts.stallAfter)) return;
        if (socket.writable) socket.write(pending.slice(0, step));
        pending = pending.slice(step);
        sent += step;
      }, tickMs);
    });
  });
}
