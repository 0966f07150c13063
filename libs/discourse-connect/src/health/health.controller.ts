import {
  Controller,
  Get,
  Header,
  HttpException,
  HttpStatus,
  Inject,
  Optional,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { DiscordBotConnection, type DiscordBotStatus } from '../bot/discord-bot';
import { DiscourseConnectRedis } from '../redis/discourse-connect-redis';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { SyncQueue, type SyncQueueCounts } from '../sync/sync-queue.service';
import {
  DISCOURSE_CONNECT_ROUTES as ROUTES,
  DiscourseConnectRoutes,
} from '../http/discourse-connect-routes';

export interface HealthReport {
  status: 'ok' | 'error';
  checks: { database: 'up' | 'down'; redis?: 'up' | 'down' };
  /** The sync queue's counts (the database outbox plus BullMQ with Redis), when they could be read. */
  queue?: SyncQueueCounts;
  /**
   * The Discord bot connection in this instance, when a bot is configured: whether it holds the
   * gateway, is connected, and its last reconcile. Informative: a gateway down never fails the check.
   */
  discord?: DiscordBotStatus;
  /**
   * Where the module's routes are mounted, and the URLs the forum and Discord must be set to (the
   * CLI's `check` compares the forum's settings with them). Public addresses only, nothing secret.
   */
  routes: {
    /** `''` at the root, `/community` under a global prefix or RouterModule path. */
    mountPath: string;
    /** The forum's `discourse_connect_url`. */
    connectUrl: string;
    /** The forum's `logout_redirect`. */
    logoutRedirect: string;
    /** The redirect URI registered with Discord. */
    discordRedirectUri: string;
    /**
     * With Vanilla forums: what their jsConnect connection must be set to (the same for every
     * Vanilla forum): Authentication URL, Sign In URL and Sign Out URL.
     */
    vanilla?: { authenticateUrl: string; signInUrl: string; signOutUrl: string };
  };
}

/**
 * `GET /health`: 200 when the database (and Redis, when configured) answer, 503 otherwise; with
 * the sync queue's pending/running/failed counts. Adapter-neutral (no response object).
 */
@Controller(ROUTES.health.controller)
export class DiscourseConnectHealthController {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly queue: SyncQueue,
    private readonly routes: DiscourseConnectRoutes,
    private readonly settings: DiscourseConnectSettings,
    @Optional()
    @Inject(DiscourseConnectRedis)
    private readonly redis?: DiscourseConnectRedis | null,
    @Optional() private readonly bot?: DiscordBotConnection,
  ) {}

  @Get()
  @Header('Cache-Control', 'no-store')
  async check(): Promise<HealthReport> {
    const [database, redis] = await Promise.all([
      this.dataSource.query('SELECT 1').then(
        () => 'up' as const,
        () => 'down' as const,
      ),
      this.redis
        ? this.redis.ping().then((up) => (up ? ('up' as const) : ('down' as const)))
        : undefined,
    ]);
    let queue: SyncQueueCounts | undefined;
    if (database === 'up' && redis !== 'down') {
      queue = await this.queue.counts().catch(() => undefined);
    }
    const ok = database === 'up' && redis !== 'down';
    const discord = this.bot?.status();
    const report: HealthReport = {
      status: ok ? 'ok' : 'error',
      checks: { database, ...(redis ? { redis } : {}) },
      queue,
      ...(discord ? { discord } : {}),
      routes: {
        mountPath: this.routes.mountPath,
        connectUrl: this.routes.url('sso'),
        logoutRedirect: this.routes.url('forumLogout'),
        discordRedirectUri: this.routes.discordCallbackUrl,
        ...(this.settings.vanilla
          ? {
              vanilla: {
                authenticateUrl: this.routes.url('vanillaConnect'),
                signInUrl: this.routes.url('signIn'),
                signOutUrl: this.routes.url('vanillaLogout'),
              },
            }
          : {}),
      },
    };
    if (!ok) throw new HttpException(report, HttpStatus.SERVICE_UNAVAILABLE);
    return report;
  }
}
