import { DISCORD_FIXTURES } from 'nestjs-discourse-connect-simulators';
import { gzipSync, deflateSync } from 'node:zlib';
import { TestBrowser } from './support/browser';
import { rawRequest } from './support/raw-http';
import { HTTP_ADAPTERS, startHarness, type HttpAdapterName } from './support/harness';

/**
 * The same requests on Express and on Fastify get the same status, headers and body. Left out as
 * the adapters' own business: Express's weak ETag, and the text body (with its Content-Type and
 * `Vary: Accept`) Express puts in a redirect, which Fastify sends empty. Per-run values (ports,
 * dates, cookie values, ids) are masked.
 */

type Row = [label: string, status: number, headers: string[], body: string];

const ADAPTER_OWN = new Set(['date', 'etag', 'keep-alive', 'connection', 'x-request-id']);

async function record(label: string, res: Response, rows: Row[]): Promise<void> {
  const redirect = res.status >= 300 && res.status < 400;
  const headers = [...res.headers.entries()]
    .filter(
      ([k]) =>
        !ADAPTER_OWN.has(k) &&
        !(redirect && ['content-type', 'content-length', 'vary'].includes(k)),
    )
    .map(([k, v]) => {
      if (k === 'set-cookie')
        return `${k}: ${v.replace(/=[^;]+;/, '=<value>;').replace(/Expires=[^;]+/, 'Expires=<date>')}`;
      if (k === 'location')
        return `${k}: ${v.replace(/(:|%3A)\d{2,5}(\/|%2F)/g, '$1<port>$2').replace(/(state|code_challenge)=[^&]+/g, '$1=<x>')}`;
      return `${k}: ${v}`;
    });
  const body = await res.text();
  rows.push([label, res.status, headers, redirect ? '' : body.replace(/:\d{2,5}\//g, ':<port>/')]);
}

async function flow(adapter: HttpAdapterName): Promise<Row[]> {
  const h = await startHarness('forRoot', { adapter });
  const rows: Row[] = [];
  try {
    h.discord.knobs.autoApproveAs = DISCORD_FIXTURES.migrated.id;
    const browser = new TestBrowser();
    const webhook = (
      contentType: string,
      body: string | Buffer,
      headers: Record<string, string> = {},
    ) =>
      fetch(`${h.appUrl}/discourse/webhooks`, {
        method: 'POST',
        headers: { 'content-type': contentType, accept: 'text/html', ...headers },
        body,
      });
    const start = await browser.request(`${h.appUrl}/auth/discord?returnTo=%2Faccount`);
    await record('start sign-in', start, rows);
    const consent = await fetch(start.headers.get('location')!, { redirect: 'manual' });
    await record('Discord callback', await browser.request(consent.headers.get('location')!), rows);
    await record(
      'callback again (replayed)',
      await browser.request(consent.headers.get('location')!),
      rows,
    );
    await record('bad sso', await browser.request(`${h.appUrl}/discourse/sso?sso=x&sig=y`), rows);
    await record(
      'bad sso, JSON',
      await browser.request(`${h.appUrl}/discourse/sso?sso=x&sig=y`, {
        headers: { accept: 'application/json' },
      }),
      rows,
    );
    await record(
      'forum link',
      await browser.request(`${h.appUrl}/discourse/forum?return_path=%2Ft%2F1`),
      rows,
    );
    await record(
      'forum link, trailing slash and capitals',
      await browser.request(`${h.appUrl}/Discourse/Forum/?return_path=%2Ft%2F1`),
      rows,
    );
    await record(
      'forum link, path outside ASCII',
      await browser.request(`${h.appUrl}/discourse/forum?return_path=%2F%E2%82%AC`),
      rows,
    );
    await record(
      'foreign return path',
      await browser.request(`${h.appUrl}/discourse/forum?return_path=%2F%2Fevil.example`),
      rows,
    );
    await record(
      'logout target from elsewhere',
      await browser.request(`${h.appUrl}/discourse/logout`),
      rows,
    );
    await record(
      'cross-site sign-out',
      await browser.request(`${h.appUrl}/auth/logout`, {
        method: 'POST',
        headers: { origin: 'https://evil.example' },
      }),
      rows,
    );
    await record(
      'sign-out',
      await browser.request(`${h.appUrl}/auth/logout`, {
        method: 'POST',
        headers: { origin: h.appUrl },
      }),
      rows,
    );
    await record('webhook, bad JSON', await webhook('application/json', '{x'), rows);
    await record(
      'webhook, body too large',
      await webhook('application/json', JSON.stringify({ pad: 'x'.repeat(200_000) })),
      rows,
    );
    await record('webhook, not signed', await webhook('application/json', '{}'), rows);
    // Hostile input the adapters used to answer differently: the stricter answer on both.
    await record(
      'percent-encoded letter in a module path',
      await browser.request(`${h.appUrl}/discourse/%6Cogout`),
      rows,
    );
    await record(
      'webhook, gzip',
      await webhook('application/json', gzipSync('{}'), { 'content-encoding': 'gzip' }),
      rows,
    );
    await record(
      'webhook, deflate',
      await webhook('application/json', deflateSync('{}'), { 'content-encoding': 'deflate' }),
      rows,
    );
    await record(
      'webhook, JSON in UTF-16',
      await webhook('application/json; charset=utf-16', Buffer.from('{}', 'utf16le')),
      rows,
    );
    await record(
      'webhook, JSON in latin1',
      await webhook('application/json; charset=latin1', '{}'),
      rows,
    );
    const getWithBody = (body: string) =>
      rawRequest(`${h.appUrl}/health`, {
        method: 'GET',
        headers: { 'content-type': 'application/json' },
        body,
      });
    await record('GET /health with a malformed JSON body', await getWithBody('{x'), rows);
  } finally {
    await h.close();
  }
  return rows;
}

describe('the same answers on both adapters', () => {
  const results: Partial<Record<HttpAdapterName, Row[]>> = {};

  beforeAll(async () => {
    for (const adapter of HTTP_ADAPTERS) results[adapter] = await flow(adapter);
  });

  it('covers the flow on each adapter', () => {
    expect(results.express?.length).toBeGreaterThan(10);
    expect(results.fastify?.length).toBe(results.express?.length);
  });

  it.each(Array.from({ length: 21 }, (_, i) => i))(
    'request %i: same status, headers and body',
    (i) => {
      const [express, fastify] = [results.express![i], results.fastify![i]];
      expect(fastify).toEqual(express);
    },
  );
});
