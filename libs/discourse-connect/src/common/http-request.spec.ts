import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { httpRequest, retryAfterSeconds } from './http-request';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

/** A real HTTP server on a free port; each test sets what it answers. */
describe('httpRequest', () => {
  let server: Server;
  let url: string;
  let handler: Handler;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => handler(req, body, res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends the method, headers and form, and reads the answer as text', async () => {
    let seen: { method?: string; type?: string; key?: string; body?: string } = {};
    handler = (req, body, res) => {
      seen = {
        method: req.method,
        type: req.headers['content-type'],
        key: req.headers['api-key'] as string,
        body,
      };
      res.writeHead(201, { 'Content-Type': 'application/json' }).end('{"ok":true}');
    };
    const result = await httpRequest(`${url}/x`, {
      method: 'PUT',
      headers: { 'Api-Key': 'k' },
      form: { usernames: 'a,b' },
      timeoutMs: 2000,
    });
    expect(result).toMatchObject({ reached: true, status: 201, ok: true, text: '{"ok":true}' });
    expect(seen).toEqual({
      method: 'PUT',
      type: 'application/x-www-form-urlencoded',
      key: 'k',
      body: 'usernames=a%2Cb',
    });
  });

  it('reports an error status as an answer, with its headers', async () => {
    handler = (_req, _body, res) => res.writeHead(429, { 'Retry-After': '7' }).end('slow down');
    const result = await httpRequest(url, { timeoutMs: 2000 });
    expect(result).toMatchObject({ reached: true, status: 429, ok: false, text: 'slow down' });
    if (!result.reached) throw new Error('expected an answer');
    expect(retryAfterSeconds(result.headers)).toBe(7);
  });

  it('reports a redirect instead of following it with redirect: manual', async () => {
    handler = (_req, _body, res) => res.writeHead(302, { Location: '/elsewhere' }).end();
    const result = await httpRequest(url, { timeoutMs: 2000, redirect: 'manual' });
    expect(result).toMatchObject({ reached: true, status: 302, ok: false });
  });

  it('gives up after the timeout (timedOut)', async () => {
    handler = () => undefined; // never answers
    const started = Date.now();
    expect(await httpRequest(url, { timeoutMs: 100 })).toEqual({ reached: false, timedOut: true });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('reports a server that cannot be reached (not a timeout)', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    expect(await httpRequest(`http://127.0.0.1:${port}/`, { timeoutMs: 2000 })).toEqual({
      reached: false,
      timedOut: false,
    });
  });
});

describe('retryAfterSeconds', () => {
  const headers = (value?: string) =>
    new Headers(value === undefined ? {} : { 'Retry-After': value });
  const now = Date.parse('2025-01-01T00:00:00Z');

  it('reads seconds, rounded up', () => {
    expect(retryAfterSeconds(headers('30'))).toBe(30);
    expect(retryAfterSeconds(headers('1.2'))).toBe(2);
    expect(retryAfterSeconds(headers(' 5 '))).toBe(5);
  });

  it('reads an HTTP date as the seconds left until then', () => {
    expect(retryAfterSeconds(headers('Wed, 01 Jan 2025 00:00:42 GMT'), now)).toBe(42);
    expect(retryAfterSeconds(headers('Wed, 01 Jan 2025 00:00:41 GMT'), now + 500)).toBe(41);
  });

  it('is undefined when absent, zero, negative, in the past or unreadable', () => {
    expect(retryAfterSeconds(headers())).toBeUndefined();
    expect(retryAfterSeconds(headers(''))).toBeUndefined();
    expect(retryAfterSeconds(headers('0'))).toBeUndefined();
    expect(retryAfterSeconds(headers('-3'))).toBeUndefined();
    expect(retryAfterSeconds(headers('Tue, 31 Dec 2024 23:59:00 GMT'), now)).toBeUndefined();
    expect(retryAfterSeconds(headers('soon'))).toBeUndefined();
  });
});
