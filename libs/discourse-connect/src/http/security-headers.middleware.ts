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
  private readonly handler: ReturnType<typeof helmet>;

  constructor(settings: DiscourseConnectSettings) {
    this.handler = helmet({
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
  }

  /** Nest middleware gets Node's request and response on Fastify, Express's (which extend them) on Express. */
  use(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void {
    // A path with percent-encoded characters is none of the module's routes (they answer it with
    // the 404 of an unknown path on both adapters, see http/): it gets the host's headers only, as
    // on Express, where this middleware never matches it, though Fastify's router decodes it.
    // (`originalUrl`: the path as sent; Nest strips the matched path from `url` on Fastify.)
    const target = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '';
    if (target.split('?')[0].includes('%')) return next();
    this.handler(req, res, next);
  }
}
