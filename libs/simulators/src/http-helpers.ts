import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

/** A failure to inject: 429 (JSON with `retry_after`, or Cloudflare-style plain text) or any other status. */
export interface SimFailure {
  status: number;
  /** Seconds, for the `Retry-After` header and `retry_after` body field (429). Default 1. */
  retryAfter?: number;
  /** Answer in plain text, as Cloudflare does in front of Discord. */
  plainText?: boolean;
}

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Random string of [A-Za-z0-9], the shape of Discord's codes and tokens. */
export function randomToken(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(length * 2);
  let out = '';
  for (let i = 0; i < bytes.length && out.length < length; i++) {
    // 248 = 4 * 62: reject the top of the byte range to keep the distribution uniform.
    if (bytes[i] < 248) out += alphabet[bytes[i] % 62];
  }
  return out.length === length ? out : out + randomToken(length - out.length);
}

/** `decodeURIComponent`, or the input unchanged when it is not valid percent-encoding. */
export function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

/** Constant-time string equality (false for different lengths, without early exit on content). */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  if (ab.length !== bb.length) {
    timingSafeEqual(ab, ab);
    return false;
  }
  return timingSafeEqual(ab, bb);
}

export function readBody(req: IncomingMessage, limit = 1024 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export function sendText(
  res: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

/** A complete HTML document; `bodyHtml` (and `headHtml`, extra head elements) must already be escaped. */
export function sendHtml(
  res: ServerResponse,
  status: number,
  title: string,
  bodyHtml: string,
  headHtml = '',
): void {
  const doc =
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${escapeHtml(title)}</title>` +
    '<style>body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;line-height:1.5}' +
    'button{font-size:1rem;padding:.4rem .8rem;margin:.2rem 0;cursor:pointer}' +
    '.sim{color:#888;font-size:.85rem}img.avatar{width:48px;height:48px;border-radius:50%;vertical-align:middle}</style>' +
    `${headHtml}</head><body>${bodyHtml}</body></html>`;
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(doc),
    'Cache-Control': 'no-store',
  });
  res.end(doc);
}

export function redirect(res: ServerResponse, location: string, status = 302): void {
  res.writeHead(status, { Location: location, 'Content-Length': 0, 'Cache-Control': 'no-store' });
  res.end();
}

/** Appends an already form-encoded query to a URL that may or may not carry a query already. */
export function appendQuery(url: string, query: string): string {
  const hash = url.indexOf('#');
  const base = hash === -1 ? url : url.slice(0, hash);
  const sep = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return base + sep + query;
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

/**
 * The listen/close/handle plumbing shared by both simulators. Subclasses implement `route`;
 * an exception there becomes a plain 500 so a simulator bug never hangs a test.
 */
export abstract class SimulatedServer {
  private server: Server | undefined;

  protected abstract route(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<void> | void;

  /** Called before routing; return true when the request was consumed (e.g. the service is "down"). */
  protected intercept(req: IncomingMessage): boolean {
    void req;
    return false;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.intercept(req)) return;
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://simulator.invalid');
    } catch {
      sendText(res, 400, 'Bad Request');
      return;
    }
    Promise.resolve()
      .then(() => this.route(req, res, url))
      .catch((err: unknown) => {
        if (!res.headersSent) sendText(res, 500, 'Internal Server Error');
        else res.destroy();
        if (process.env.SIMULATOR_DEBUG) console.error(err);
      });
  }

  /** Starts listening; resolves to the base URL without a trailing slash. */
  listen(port = 0, host = '127.0.0.1'): Promise<string> {
    if (this.server) return Promise.reject(new Error('simulator is already listening'));
    const server = createServer((req, res) => this.handle(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', (err) => {
        this.server = undefined;
        reject(err);
      });
      server.listen(port, host, () => {
        const addr = server.address() as AddressInfo;
        const h =
          addr.family === 'IPv6' || addr.address.includes(':') ? `[${addr.address}]` : addr.address;
        const base = `http://${h}:${addr.port}`;
        this.onListening(base);
        resolve(base);
      });
    });
  }

  /** An HTTP upgrade (WebSocket) request; refused unless a subclass takes it. */
  protected upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    void req;
    void head;
    socket.destroy();
  }

  protected onListening(baseUrl: string): void {
    void baseUrl;
  }

  close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    return new Promise((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });
  }
}
