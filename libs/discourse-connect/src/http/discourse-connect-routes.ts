import type { Type } from '@nestjs/common';
import { Injectable, Logger, type OnApplicationBootstrap, RequestMethod } from '@nestjs/common';
import { MODULE_PATH, PATH_METADATA, VERSION_METADATA } from '@nestjs/common/constants.js';
import { ModulesContainer, ModuleRef, type ApplicationConfig } from '@nestjs/core';
import { RoutePathFactory } from '@nestjs/core/router/route-path-factory.js';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';

/**
 * The module's routes, each as its controller path and its own path (what the decorators say).
 * The controllers use these same strings, so a link can never point at a route that moved.
 */
export const DISCOURSE_CONNECT_ROUTES = {
  /** `GET /discourse/sso`: the forum's `discourse_connect_url`. */
  sso: { controller: 'discourse', path: 'sso', method: RequestMethod.GET },
  /** `GET /discourse/forum`: the forum link. */
  forumLink: { controller: 'discourse', path: 'forum', method: RequestMethod.GET },
  /** `GET|POST /discourse/logout`: the forum's `logout_redirect`. */
  forumLogout: { controller: 'discourse', path: 'logout', method: RequestMethod.GET },
  /** `POST /discourse/webhooks`: the forum's webhooks. */
  webhooks: { controller: 'discourse', path: 'webhooks', method: RequestMethod.POST },
  /** `GET /auth/discord`: starts Discord sign-in. */
  signIn: { controller: 'auth', path: 'discord', method: RequestMethod.GET },
  /** `GET /auth/discord/callback`: Discord's redirect URI. */
  callback: { controller: 'auth', path: 'discord/callback', method: RequestMethod.GET },
  /** `POST /auth/logout`: local sign-out. */
  signOut: { controller: 'auth', path: 'logout', method: RequestMethod.POST },
  /** `GET /health`. */
  health: { controller: 'health', path: '', method: RequestMethod.GET },
  /** `GET /vanilla/connect`: a Vanilla forum's jsConnect authenticate URL. */
  vanillaConnect: { controller: 'vanilla', path: 'connect', method: RequestMethod.GET },
  /** `GET /vanilla/forum`: the Vanilla forum link. */
  vanillaForumLink: { controller: 'vanilla', path: 'forum', method: RequestMethod.GET },
  /** `GET|POST /vanilla/logout`: where a Vanilla forum's sign-out sends the browser. */
  vanillaLogout: { controller: 'vanilla', path: 'logout', method: RequestMethod.GET },
} as const;

export type DiscourseConnectRouteName = keyof typeof DISCOURSE_CONNECT_ROUTES;

/** The path of every module route as the app serves it (global prefix, RouterModule path, version). */
export type DiscourseConnectRoutePaths = Record<DiscourseConnectRouteName, string>;

/** A route's path without any mount: `/discourse/sso`. */
export function unmountedRoutePath(name: DiscourseConnectRouteName): string {
  const { controller, path } = DISCOURSE_CONNECT_ROUTES[name];
  return `/${[controller, path].filter(Boolean).join('/')}`;
}

/**
 * Where the module's routes are mounted, as Nest itself computes it when it registers them: the
 * app's global prefix (with its `exclude` list), a `RouterModule` path given to the module, and URI
 * versioning. Every link and redirect the module makes goes through here, so the routes work
 * wherever the host mounts them, with no option of the module's own.
 */
@Injectable()
export class DiscourseConnectRoutes implements OnApplicationBootstrap {
  private readonly logger = new Logger('DiscourseConnect');
  private moduleClass?: Type;
  private cached?: DiscourseConnectRoutePaths;
  private warned = false;

  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly modules: ModulesContainer,
    private readonly moduleRef: ModuleRef,
  ) {}

  /** Called by the module: the class whose RouterModule path applies to the routes. */
  attachModule(moduleClass: Type): void {
    this.moduleClass = moduleClass;
    this.cached = undefined;
  }

  /** The routes are registered and the prefix can no longer change: computed once from here on. */
  onApplicationBootstrap(): void {
    this.cached = this.compute();
  }

  /** The path of each module route as served, e.g. `{ sso: '/community/discourse/sso', … }`. */
  get paths(): DiscourseConnectRoutePaths {
    return this.cached ?? this.compute();
  }

  path(name: DiscourseConnectRouteName): string {
    return this.paths[name];
  }

  /** An absolute URL of a module route on `publicUrl`. */
  url(name: DiscourseConnectRouteName): string {
    return `${this.settings.publicUrl}${this.path(name)}`;
  }

  /**
   * The module's mount path: what comes before `/discourse/sso` (`''` at the root,
   * `/community` under a global prefix or RouterModule path).
   */
  get mountPath(): string {
    const sso = this.path('sso');
    return sso.slice(0, sso.length - unmountedRoutePath('sso').length);
  }

  /** Discord's redirect URI: `discord.callbackUrl` when configured, else the callback route. */
  get discordCallbackUrl(): string {
    return this.settings.discord.callbackUrl ?? this.url('callback');
  }

  private compute(): DiscourseConnectRoutePaths {
    const config = this.applicationConfig();
    const factory = config ? new RoutePathFactory(config) : undefined;
    const modulePath = this.modulePath();
    const versioningOptions = config?.getVersioning();
    const globalPrefix = config?.getGlobalPrefix();
    const paths = {} as DiscourseConnectRoutePaths;
    for (const name of Object.keys(DISCOURSE_CONNECT_ROUTES) as DiscourseConnectRouteName[]) {
      const route = DISCOURSE_CONNECT_ROUTES[name];
      if (!factory) {
        paths[name] = joinPaths(modulePath, unmountedRoutePath(name));
        continue;
      }
      const controllerVersion = versioningOptions
        ? ((this.controllerVersion(route.controller) ??
            (versioningOptions as { defaultVersion?: unknown }).defaultVersion) as never)
        : undefined;
      const [first] = factory.create(
        {
          ctrlPath: `/${route.controller}`,
          methodPath: route.path ? `/${route.path}` : '/',
          modulePath,
          globalPrefix,
          controllerVersion,
          versioningOptions,
        },
        route.method,
      );
      paths[name] = normalise(first ?? unmountedRoutePath(name));
    }
    return paths;
  }

  /** The RouterModule path of the module, as Nest's RoutesResolver reads it. */
  private modulePath(): string | undefined {
    if (!this.moduleClass) return undefined;
    const id = this.modules.applicationId;
    return (Reflect.getMetadata(MODULE_PATH + id, this.moduleClass) ??
      Reflect.getMetadata(MODULE_PATH, this.moduleClass)) as string | undefined;
  }

  private controllerVersion(controllerPath: string): unknown {
    for (const module of this.modules.values()) {
      if (module.metatype !== this.moduleClass) continue;
      for (const wrapper of module.controllers.values()) {
        const metatype = wrapper.metatype as Type | null;
        if (metatype && Reflect.getMetadata(PATH_METADATA, metatype) === controllerPath) {
          return Reflect.getMetadata(VERSION_METADATA, metatype);
        }
      }
    }
    return undefined;
  }

  /** The application's configuration (global prefix, versioning), which Nest keeps on its container. */
  private applicationConfig(): ApplicationConfig | undefined {
    const container = (
      this.moduleRef as unknown as { container?: { applicationConfig?: ApplicationConfig } }
    ).container;
    const config = container?.applicationConfig;
    if (!config && !this.warned) {
      this.warned = true;
      this.logger.warn(
        'Could not read the application configuration from Nest; links assume no global prefix.',
      );
    }
    return config;
  }
}

function joinPaths(...parts: (string | undefined)[]): string {
  return normalise(
    `/${parts
      .filter((p): p is string => !!p)
      .map((p) => p.replace(/^\/+|\/+$/g, ''))
      .filter(Boolean)
      .join('/')}`,
  );
}

/** One leading slash, no trailing slash (except the root), no doubled slashes. */
function normalise(path: string): string {
  const collapsed = `/${path}`.replace(/\/{2,}/g, '/');
  return collapsed.length > 1 ? collapsed.replace(/\/+$/, '') : collapsed;
}
