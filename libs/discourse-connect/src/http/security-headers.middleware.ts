import { Injectable, NestMiddleware } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';

/**
 * helmet on the module's own routes (the module applies it to its controllers only; the host
 * decides for its pages). The module's pages have one inline <style>, no script, no image from
 * elsewhere, and forms that POST to this site, so the policy allows exactly that.
 */
@Injectable()
export class DiscourseConnectSecurityHeadersMiddleware implements NestMiddleware {
  /** The headers helmet sets with these options: the same on every request, so worked out once. */
  private readonly headers: [string, string][];
  /** The headers helmet removes (X-Powered-By). */
  private readonly removed: string[];

  constructor(settings: DiscourseConnectSettings) {
    const handler = helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          'default-src': ["'none'"],
          'style-src': ["'unsafe-inline'"],
          'img-src': ["'self'", 'data:'],
          'form-action': ["'self'"],
          'frame-ancestors': ["'none'"],
          'base-uri': ["'none'"],
          ...(settings.secureCookies ? { 'upgrade-insecure-requests': [] } : {}),
        },
      },
      referrerPolicy: { policy: 'no-referrer' },
      // HSTS only means something over https; on http (sandbox, tests) it is left out.
      strictTransportSecurity: settings.secureCookies
        ? { maxAge: 31_536_000, includeSubDomains: false }
        : false,
      xFrameOptions: { action: 'deny' },
    });
    const { headers, removed } = staticHeadersOf(handler);
    this.headers = headers;
    this.removed = removed;
  }

  /** Nest middleware gets Node's request and response on Fastify, Express's (which extend them) on Express. */
  use(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void {
    // A path with percent-encoded characters is none of the module's routes (they answer it with
    // the 404 of an unknown path on both adapters, see http/): it gets the host's headers only, as
    // on Express, where this middleware never matches it, though Fastify's router decodes it.
    // (`originalUrl`: the path as sent; Nest strips the matched path from `url` on Fastify.)
    const target = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '';
    const query = target.indexOf('?');
    if ((query === -1 ? target : target.slice(0, query)).includes('%')) return next();
    for (const [name, value] of this.headers) res.setHeader(name, value);
    for (const name of this.removed) res.removeHeader(name);
    next();
  }
}

/**
 * What a helmet handler does to a response: the headers it sets and removes. Its options here have
 * no per-request part (no nonce), so running it once on a recording response gives the same
 * headers it would give every request.
 */
function staticHeadersOf(handler: ReturnType<typeof helmet>): {
  headers: [string, string][];
  removed: string[];
} {
  const headers: [string, string][] = [];
  const removed: string[] = [];
  let failed: unknown;
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers.push([name, Array.isArray(value) ? value.join(', ') : String(value)]);
    },
    removeHeader(name: string) {
      removed.push(name);
    },
  };
  handler({ headers: {}, method: 'GET', url: '/' } as never, recorder as never, (err?: unknown) => {
    failed = err;
  });
  if (failed) throw failed instanceof Error ? failed : new Error(String(failed));
  return { headers, removed };
}
