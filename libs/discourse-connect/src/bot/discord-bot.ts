import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
  Optional,
} from '@nestjs/common';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { DiscourseConnectActionsService } from '../hooks/actions.service';
import type { DiscordReconcileEvent } from '../hooks/discourse-connect.events';
import { DiscourseConnectRedis } from '../redis/discourse-connect-redis';
import { UsersService } from '../users/users.service';
import { DiscordGatewayConnection, type GatewayDispatch } from './discord-gateway';
import { DiscordMemberSync } from './discord-member-sync';
import { DiscordReconcile } from './discord-reconcile';
import { FailureLog } from './failure-log';
import { LocalGatewayLease, RedisGatewayLease, type GatewayLease } from './gateway-lease';
import { DiscordGuildMembers } from './guild-members';
import { rolesOf } from './member-roles';

/** What `GET /health` shows of the bot connection. */
export interface DiscordBotStatus {
  /** `held`: this instance holds the gateway; `standby`: another one does (Redis); `off`: not here. */
  gateway: 'held' | 'standby' | 'off';
  /** A gateway session is open in this instance. */
  connected: boolean;
  /** The last reconcile this instance finished, if any. */
  lastReconcile?: { finishedAt: string; complete: boolean; updated: number; left: number };
}

/** How long after taking the gateway the first reconcile waits for the server's member count. */
const COUNT_WAIT_MS = 5000;

/**
 * The bot connection of one process: with `bot` configured (and `bot.gateway` on), it takes the
 * gateway lease (Redis, shared by every instance; without Redis the process always holds it), and
 * while it holds it keeps the gateway open, applies member events ({@link DiscordMemberSync}) and
 * runs the reconcile at takeover, after each new gateway session and every `reconcileSeconds`. It
 * renews the lease every third of its life and gives it up at shutdown, so another instance takes
 * over at once; an instance that dies stops renewing, and another takes over when the lease expires.
 * The lease's life is counted from when its last renewal was sent, not answered: a holder whose
 * renewals go unanswered closes the gateway a sixth of the lease before it could lapse in Redis,
 * without waiting for Redis, so two instances never hold the gateway together.
 * A Discord that cannot be reached leaves the reconcile retrying at its interval, logged once per
 * 10 minutes, and never stops the app.
 */
@Injectable()
export class DiscordBotConnection implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('DiscourseConnect');
  private lease?: GatewayLease;
  private members?: DiscordGuildMembers;
  private gateway?: DiscordGatewayConnection;
  /** The gateway's failures and the reconcile's, each logged at most once per 10 minutes. */
  private failures?: FailureLog;
  private reconcileFailures?: FailureLog;
  private leaseTimer?: NodeJS.Timeout;
  /** Steps down when the lease may have lapsed: a margin before it would, counted from the send. */
  private leaseDeadline?: NodeJS.Timeout;
  private reconcileTimer?: NodeJS.Timeout;
  private countTimer?: NodeJS.Timeout;
  private holding = false;
  private ticking = false;
  private stopped = false;
  /** The server's member count from the gateway (`GUILD_CREATE`, then joins and leaves). */
  private memberCount?: number;
  /** A reconcile waits for the member count (after a takeover or a new gateway session). */
  private reconcileWanted = false;
  private reconciling?: Promise<DiscordReconcileEvent | undefined>;
  private reconcileNext?: Promise<DiscordReconcileEvent | undefined>;
  private lastReconcile?: { at: number; result: DiscordReconcileEvent };

  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly sync: DiscordMemberSync,
    private readonly users: UsersService,
    private readonly actions: DiscourseConnectActionsService,
    @Optional()
    @Inject(DiscourseConnectRedis)
    private readonly redis?: DiscourseConnectRedis | null,
  ) {}

  /** Whether this process holds the gateway now. */
  get isHolder(): boolean {
    return this.holding;
  }

  /** The bot connection as `GET /health` reports it; undefined when no bot is configured. */
  status(): DiscordBotStatus | undefined {
    if (!this.settings.bot) return undefined;
    const last = this.lastReconcile;
    return {
      gateway: !this.lease ? 'off' : this.holding ? 'held' : 'standby',
      connected: this.gateway?.connected ?? false,
      ...(last
        ? {
            lastReconcile: {
              finishedAt: new Date(last.at).toISOString(),
              complete: last.result.complete,
              updated: last.result.updated,
              left: last.result.left,
            },
          }
        : {}),
    };
  }

  onApplicationBootstrap(): void {
    const bot = this.settings.bot;
    if (!bot || !bot.gateway) return;
    this.failures = new FailureLog(this.logger, bot.token);
    this.reconcileFailures = new FailureLog(this.logger, bot.token);
    this.members = new DiscordGuildMembers(this.settings, bot);
    this.gateway = new DiscordGatewayConnection(
      this.members.rest,
      bot.token,
      { dispatch: (e) => this.onDispatch(e), connected: (resumed) => this.onConnected(resumed) },
      this.failures,
    );
    this.lease = this.redis
      ? new RedisGatewayLease(this.redis.client, `${this.redis.prefix}discord-gateway`, bot.leaseMs)
      : new LocalGatewayLease();
    if (!this.users.canListUsers) {
      this.logger.warn(
        'The user store cannot list users (listDiscordIds): the Discord reconcile compares the members Discord lists, and only the gateway reports members who left.',
      );
    }
    this.leaseTimer = setInterval(() => void this.tick(), Math.max(250, bot.leaseMs / 3));
    this.leaseTimer.unref();
    void this.tick();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearInterval(this.leaseTimer);
    await this.stepDown();
    if (this.lease && this.redis) {
      await this.lease.release().catch(() => undefined);
    }
    this.members?.close();
  }

  /**
   * Compares every member's roles with Discord now (also run on its own schedule by the process
   * holding the gateway). Resolves to the report of a reconcile that started after the call (one
   * already running is followed by one more, shared by every caller meanwhile), or undefined when it
   * could not finish (logged).
   */
  reconcile(): Promise<DiscordReconcileEvent | undefined> {
    if (this.reconciling) {
      this.reconcileNext ??= this.reconciling.then(() => {
        this.reconcileNext = undefined;
        return this.stopped ? undefined : this.reconcile();
      });
      return this.reconcileNext;
    }
    this.reconcileWanted = false;
    clearTimeout(this.countTimer);
    const run = this.runReconcile().finally(() => {
      this.reconciling = undefined;
    });
    this.reconciling = run;
    return run;
  }

  private async runReconcile(): Promise<DiscordReconcileEvent | undefined> {
    if (!this.members) return undefined;
    const reconcile = new DiscordReconcile(this.members, this.users, this.sync, this.actions);
    try {
      const result = await reconcile.run({
        memberCount: this.memberCount,
        shouldStop: () => this.stopped || !this.holding,
      });
      this.lastReconcile = { at: Date.now(), result };
      this.logger.log(
        `Discord reconcile: ${result.listed} members listed in ${result.discordCalls} calls, ` +
          `${result.updated} updated, ${result.left} gone, ${result.returned} back`,
      );
      return result;
    } catch (error) {
      this.reconcileFailures?.report(
        `the Discord reconcile failed (it runs again in ${this.settings.bot!.reconcileSeconds} s): ${(error as Error)?.message}`,
      );
      return undefined;
    }
  }

  /** Renews the lease this process holds, or tries to take it. */
  private async tick(): Promise<void> {
    if (this.ticking || this.stopped || !this.lease) return;
    this.ticking = true;
    try {
      const sentAt = Date.now();
      if (this.holding) {
        const renewed = await this.lease.renew();
        // Stepped down meanwhile (the renewal came too late): the next tick takes it again.
        if (!this.holding) return;
        if (!renewed) await this.stepDown('another instance holds the Discord gateway now');
        else this.holdUntil(sentAt);
      } else if ((await this.lease.acquire()) && this.holdUntil(sentAt)) {
        this.takeOver();
      }
    } catch (error) {
      // Not renewed: the deadline of the last renewal steps down in time.
      this.redis?.logError('Discord gateway lease (Redis)', error);
    } finally {
      this.ticking = false;
    }
  }

  /**
   * The lease was taken or renewed by a command sent at `sentAt`: in Redis it lasts until
   * `sentAt + leaseMs` at the earliest. Steps down a sixth of the lease before that unless renewed
   * meanwhile, whatever Redis answers (or not). Resolves to false when that time has passed already.
   * Without Redis the one process holds it for good.
   */
  private holdUntil(sentAt: number): boolean {
    if (!this.redis) return true;
    const leaseMs = this.settings.bot!.leaseMs;
    const left = sentAt + leaseMs - Math.floor(leaseMs / 6) - Date.now();
    clearTimeout(this.leaseDeadline);
    if (left <= 0) {
      void this.stepDown('the Discord gateway lease could not be renewed in time');
      return false;
    }
    this.leaseDeadline = setTimeout(
      () => void this.stepDown('the Discord gateway lease could not be renewed in time'),
      left,
    );
    this.leaseDeadline.unref();
    return true;
  }

  private takeOver(): void {
    if (this.stopped) return;
    this.holding = true;
    this.memberCount = undefined;
    if (this.redis) this.logger.log('This instance holds the Discord gateway now');
    this.gateway!.start();
    this.wantReconcile();
    const interval = this.settings.bot!.reconcileSeconds * 1000;
    this.reconcileTimer = setInterval(() => void this.reconcile(), interval);
    this.reconcileTimer.unref();
  }

  private async stepDown(reason?: string): Promise<void> {
    const was = this.holding;
    this.holding = false;
    clearTimeout(this.leaseDeadline);
    clearInterval(this.reconcileTimer);
    clearTimeout(this.countTimer);
    this.reconcileWanted = false;
    if (was && reason) this.logger.warn(`Discord gateway given up: ${reason}`);
    await this.gateway?.stop();
    await this.reconciling;
  }

  /** A reconcile as soon as the member count is known, or after a few seconds without it. */
  private wantReconcile(): void {
    this.reconcileWanted = true;
    clearTimeout(this.countTimer);
    this.countTimer = setTimeout(() => {
      if (this.reconcileWanted && this.holding) void this.reconcile();
    }, COUNT_WAIT_MS);
    this.countTimer.unref();
  }

  private onConnected(resumed: boolean): void {
    // A new session (not a resume) lost the events sent while there was none.
    if (!resumed && !this.reconcileWanted && this.holding) this.wantReconcile();
  }

  private onDispatch(event: GatewayDispatch): void {
    if (!this.holding) return;
    const guildId = this.settings.bot!.guildId;
    const d = (event.d ?? {}) as {
      id?: string;
      guild_id?: string;
      member_count?: number;
      user?: { id?: string };
      roles?: unknown;
    };
    if (event.t === 'GUILD_CREATE') {
      if (d.id !== guildId) return;
      if (typeof d.member_count === 'number') this.memberCount = d.member_count;
      if (this.reconcileWanted) void this.reconcile();
      return;
    }
    if (d.guild_id !== guildId || typeof d.user?.id !== 'string') return;
    const id = d.user.id;
    this.sync.noteEvent(id);
    let work: Promise<unknown>;
    switch (event.t) {
      case 'GUILD_MEMBER_ADD':
        if (this.memberCount !== undefined) this.memberCount++;
        work = this.sync.applyRoles(id, rolesOf(d), 'gateway');
        break;
      case 'GUILD_MEMBER_UPDATE':
        work = this.sync.applyRoles(id, rolesOf(d), 'gateway');
        break;
      case 'GUILD_MEMBER_REMOVE':
        if (this.memberCount !== undefined) this.memberCount--;
        work = this.sync.applyRoles(id, null, 'gateway');
        break;
      case 'GUILD_BAN_ADD':
        work = this.sync.banned(id);
        break;
      case 'GUILD_BAN_REMOVE':
        work = this.unbanned(id);
        break;
      default:
        return;
    }
    work.catch((error) =>
      this.logger.error(
        `Discord ${event.t} for ${id} could not be applied (the next reconcile catches it up): ${(error as Error)?.message}`,
      ),
    );
  }

  /** Unbanned: whether they are back in the server is asked of Discord (one call). */
  private async unbanned(id: string): Promise<void> {
    if (!(await this.users.findByDiscordId(id))) return;
    const member = await this.members!.getMember(id);
    await this.sync.unbanned(id, member ? member.roles : null);
  }
}
