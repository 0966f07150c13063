import { request as httpRequest } from 'node:http';

/**
 * A minimal cookie-keeping HTTP client that follows redirects one hop at a time, like a browser
 * without JavaScript. Cookies are kept per host name (as browsers do: ports do not separate them).
 */
export interface Hop {
  url: string;
  status: number;
  location?: string;
}

export interface Page {
  url: string;
  status: number;
  body: string;
  headers: Headers;
  hops: Hop[];
}

/**
 * Logs out on the forum the way a person does: the forum's logout sends the browser to its
 * `logout_redirect` as a top-level navigation from the forum (Fetch Metadata of a navigation).
 */
export function logOutOnForum(browser: TestBrowser, forumBaseUrl: string): Promise<Page> {
  return browser.submit(
    `${forumBaseUrl}/session/logout`,
    {},
    { referer: `${forumBaseUrl}/`, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
  );
}

export class TestBrowser {
  readonly cookies = new Map<string, Map<string, string>>();

  cookie(host: string, name: string): string | undefined {
    return this.cookies.get(host)?.get(name);
  }

  /** GET `url`, following redirects (at most `maxHops`). */
  async visit(
    url: string,
    init: { headers?: Record<string, string>; maxHops?: number } = {},
  ): Promise<Page> {
    return this.follow(url, { method: 'GET', headers: init.headers }, init.maxHops ?? 20);
  }

  /** POST a form, then follow redirects as GETs. */
  async submit(
    url: string,
    form: Record<string, string> = {},
    headers: Record<string, string> = {},
  ): Promise<Page> {
    return this.follow(
      url,
      {
        method: 'POST',
        body: new URLSearchParams(form).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      },
      20,
    );
  }

  /**
   * One request, no redirect following. Node's fetch always sends `Sec-Fetch-Mode: cors`; a request
   * that sets `Sec-Fetch-Mode` itself, or asks for `exactHeaders` (a browser that sends no Fetch
   * Metadata), goes out through node:http with exactly the headers given.
   */
  async request(
    url: string,
    init: RequestInit & { headers?: Record<string, string>; exactHeaders?: boolean } = {},
  ): Promise<Response> {
    const u = new URL(url);
    const { exactHeaders, ...rest } = init;
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    const jar = this.cookies.get(u.hostname);
    if (jar && jar.size > 0) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const exact =
      exactHeaders || Object.keys(headers).some((k) => k.toLowerCase() === 'sec-fetch-mode');
    const res = exact
      ? await exactRequest(url, init.method ?? 'GET', headers, init.body)
      : await fetch(url, { ...rest, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) this.store(u.hostname, line);
    return res;
  }

  private async follow(
    url: string,
    init: RequestInit & { headers?: Record<string, string> },
    maxHops: number,
  ): Promise<Page> {
    const hops: Hop[] = [];
    let current = url;
    let req = init;
    for (;;) {
      const res = await this.request(current, req);
      const location = res.headers.get('location') ?? undefined;
      hops.push({ url: current, status: res.status, location });
      if (res.status >= 300 && res.status < 400 && location && hops.length <= maxHops) {
        await res.arrayBuffer();
        current = new URL(location, current).toString();
        req = {
          method: 'GET',
          // A browser's navigation stays one across redirects: its Fetch Metadata goes along.
          headers:
            init.headers &&
            pickHeaders(init.headers, [
              'origin',
              'sec-fetch-site',
              'sec-fetch-mode',
              'sec-fetch-dest',
              'referer',
            ]),
        };
        continue;
      }
      return {
        url: current,
        status: res.status,
        body: await res.text(),
        headers: res.headers,
        hops,
      };
    }
  }

  private store(host: string, line: string): void {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const jar = this.cookies.get(host) ?? new Map<string, string>();
    const expired = attrs.some(
      (a) => /^\s*expires=thu, 01 jan 1970/i.test(a) || /^\s*max-age=0/i.test(a),
    );
    if (expired || value === '') jar.delete(name);
    else jar.set(name, value);
    this.cookies.set(host, jar);
  }
}

function pickHeaders(headers: Record<string, string>, names: string[]): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([k]) => names.includes(k.toLowerCase())),
  );
}

/** A request with exactly these headers (no Sec-Fetch-Mode added), answered as a fetch Response. */
function exactRequest(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: unknown,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const out = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2)
          out.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        const status = res.statusCode ?? 500;
        const empty = method === 'HEAD' || status === 204 || status === 304;
        resolve(new Response(empty ? null : Buffer.concat(chunks), { status, headers: out }));
      });
    });
    req.on('error', reject);
    req.end(typeof body === 'string' ? body : undefined);
  });
}
