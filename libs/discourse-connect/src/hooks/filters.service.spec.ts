import { HttpStatus, Injectable, Logger, Scope } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  DiscourseConnectHttpException,
  SsoForbiddenException,
} from '../common/discourse-connect.exceptions';
import type { DiscourseConnectPayload } from '../protocol';
import { DiscourseConnectFilter } from './discourse-connect-filter.decorator';
import type { CanSignInContext, SsoPayloadContext } from './filters.interface';
import { DiscourseConnectFiltersService } from './filters.service';
import { filterFailedPage } from '../http/discourse-connect-exception.filter';
import { FilterFailedError } from './filter-failed.error';

const ctx = {
  user: { discordId: '1' },
  forum: { name: 'f', url: 'https://f.example.com' },
} as unknown as SsoPayloadContext;
const signInCtx = { discord: { id: '1' }, existing: null } as unknown as CanSignInContext;
const payload = (): DiscourseConnectPayload => ({
  external_id: '1',
  email: 'a@example.com',
  title: '',
});

/** A host plugin with decorated methods, declared out of priority order. */
@Injectable()
class TitlePlugin {
  readonly seenContexts: unknown[] = [];
  throwing: unknown = undefined;

  @DiscourseConnectFilter('sso.payload', { priority: 30 })
  third(p: DiscourseConnectPayload): DiscourseConnectPayload {
    if (this.throwing !== undefined) throw this.throwing;
    return { ...p, title: `${p.title}C` };
  }

  @DiscourseConnectFilter('sso.payload', { priority: 5 })
  first(p: DiscourseConnectPayload, context: SsoPayloadContext): DiscourseConnectPayload {
    this.seenContexts.push(context);
    return { ...p, title: `${p.title}A` };
  }

  @DiscourseConnectFilter('sso.payload')
  async second(p: DiscourseConnectPayload): Promise<DiscourseConnectPayload> {
    await new Promise((r) => setImmediate(r));
    return { ...p, title: `${p.title}B` };
  }

  @DiscourseConnectFilter('user.canSignIn')
  gate(allowed: boolean | string): boolean | string {
    return allowed;
  }

  /** Not decorated: never called. */
  notAFilter(p: DiscourseConnectPayload): DiscourseConnectPayload {
    return { ...p, title: 'NOT A FILTER' };
  }
}

/** Request-scoped providers have no static instance at startup: skipped. */
@Injectable({ scope: Scope.REQUEST })
class RequestScopedPlugin {
  @DiscourseConnectFilter('sso.payload', { priority: 1 })
  never(p: DiscourseConnectPayload): DiscourseConnectPayload {
    return { ...p, title: 'REQUEST SCOPED' };
  }
}

describe('DiscourseConnectFiltersService', () => {
  let moduleRef: TestingModule;
  let filters: DiscourseConnectFiltersService;
  let plugin: TitlePlugin;

  beforeEach(async () => {
    jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    moduleRef = await Test.createTestingModule({
      imports: [DiscoveryModule],
      providers: [DiscourseConnectFiltersService, TitlePlugin, RequestScopedPlugin],
    }).compile();
    await moduleRef.init();
    filters = moduleRef.get(DiscourseConnectFiltersService);
    plugin = moduleRef.get(TitlePlugin);
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await moduleRef.close();
  });

  it('discovers decorated methods on providers and runs them by ascending priority', async () => {
    expect(filters.has('sso.payload')).toBe(true);
    expect(filters.has('user.canSignIn')).toBe(true);
    const out = await filters.apply('sso.payload', payload(), ctx);
    expect(out.title).toBe('ABC');
    expect(plugin.seenContexts).toEqual([ctx]);
  });

  it('binds discovered methods to their instance', async () => {
    await filters.apply('sso.payload', payload(), ctx);
    expect(plugin.seenContexts).toHaveLength(1);
  });

  it('runs equal priorities in registration order', async () => {
    const order: string[] = [];
    for (const label of ['x', 'y', 'z']) {
      filters.add(
        'user.canSignIn',
        (v) => {
          order.push(label);
          return v;
        },
        50,
      );
    }
    filters.add(
      'user.canSignIn',
      (v) => {
        order.push('early');
        return v;
      },
      0,
    );
    expect(await filters.apply('user.canSignIn', true, signInCtx)).toBe(true);
    expect(order).toEqual(['early', 'x', 'y', 'z']);
  });

  it('inserts a later registration by its priority among the discovered ones', async () => {
    filters.add('sso.payload', (p) => ({ ...p, title: `${p.title}|` }), 10);
    filters.add('sso.payload', (p) => ({ ...p, title: `${p.title}0` }), -1);
    // -1 first, then A (5), then B and "|" (both 10, B registered first), then C (30).
    expect((await filters.apply('sso.payload', payload(), ctx)).title).toBe('0AB|C');
  });

  it('returns the value unchanged when no filter is registered', async () => {
    const fresh = new DiscourseConnectFiltersService(
      undefined as never,
      undefined as never,
      undefined as never,
    );
    const value = payload();
    expect(fresh.has('sso.payload')).toBe(false);
    expect(await fresh.apply('sso.payload', value, ctx)).toBe(value);
  });

  it('answers at once while the filters do, and waits from the first that answers with a promise', async () => {
    const fresh = new DiscourseConnectFiltersService(
      undefined as never,
      undefined as never,
      undefined as never,
    );
    fresh.add('sso.payload', (p) => ({ ...p, title: `${p.title}A` }), 1);
    fresh.add('sso.payload', (p) => ({ ...p, title: `${p.title}B` }), 2);
    const now = fresh.applyNow('sso.payload', payload(), ctx);
    expect(now).not.toBeInstanceOf(Promise);
    expect((now as DiscourseConnectPayload).title).toBe('AB');
    fresh.add('sso.payload', async (p) => ({ ...p, title: `${p.title}C` }), 3);
    fresh.add('sso.payload', (p) => ({ ...p, title: `${p.title}D` }), 4);
    const later = fresh.applyNow('sso.payload', payload(), ctx);
    expect(later).toBeInstanceOf(Promise);
    expect((await later).title).toBe('ABCD');
    // A failure after the wait fails closed as apply does.
    fresh.add('sso.payload', () => Promise.reject(new Error('down')), 5);
    await expect(fresh.applyNow('sso.payload', payload(), ctx)).rejects.toBeInstanceOf(
      FilterFailedError,
    );
  });

  it('ignores undecorated methods and request-scoped providers', async () => {
    const out = await filters.apply('sso.payload', payload(), ctx);
    expect(out.title).not.toContain('NOT A FILTER');
    expect(out.title).not.toContain('REQUEST SCOPED');
  });

  it.each([
    ['an Error', new Error('plugin bug: db password=hunter2')],
    ['a string', 'oops'],
    ['null', null],
  ])(
    'a filter throwing %s fails closed with a 403 DiscourseConnectHttpException',
    async (_name, thrown) => {
      plugin.throwing = thrown;
      const error = await filters.apply('sso.payload', payload(), ctx).then(
        () => undefined,
        (e: unknown) => e,
      );
      // A domain error (no page: background work gets it too); the HTTP layer makes the page.
      expect(error).toBeInstanceOf(FilterFailedError);
      expect(error).not.toBeInstanceOf(DiscourseConnectHttpException);
      expect((error as FilterFailedError).filter).toBe('sso.payload');
      const e = filterFailedPage(error as FilterFailedError);
      expect(e).toBeInstanceOf(SsoForbiddenException);
      expect(e.getStatus()).toBe(HttpStatus.FORBIDDEN);
      expect(e.reason).toBe('filter_failed:sso.payload');
      // The person sees a generic message; the filter's own text only goes to the log.
      expect(JSON.stringify(e.getResponse())).not.toContain('hunter2');
      expect((error as Error).message).not.toContain('hunter2');
      expect(Logger.prototype.error).toHaveBeenCalledWith(
        expect.stringContaining('TitlePlugin.third'),
      );
    },
  );

  it('a rejecting async filter fails closed too', async () => {
    filters.add(
      'sso.payload',
      async () => {
        throw new Error('async bug');
      },
      100,
    );
    await expect(filters.apply('sso.payload', payload(), ctx)).rejects.toBeInstanceOf(
      FilterFailedError,
    );
  });

  it('a filter throwing a DiscourseConnectHttpException is passed through as it is', async () => {
    const own = new SsoForbiddenException('You are banned from this forum.', 'banned', 'Banned');
    plugin.throwing = own;
    await expect(filters.apply('sso.payload', payload(), ctx)).rejects.toBe(own);
  });
});
