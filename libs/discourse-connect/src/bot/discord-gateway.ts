import { Logger } from '@nestjs/common';
import type { REST } from '@discordjs/rest';
import type { SessionInfo, WebSocketManager } from '@discordjs/ws';
import { loadDiscordWs } from './discord-libraries';
import type { FailureLog } from './failure-log';

/** GUILDS | GUILD_MEMBERS (member added, updated, removed) | GUILD_MODERATION (bans). */
export const BOT_INTENTS = (1 << 0) | (1 << 1) | (1 << 2);

/** A gateway dispatch: its event name and data. */
export interface GatewayDispatch {
  t: string;
  d: unknown;
}

/** What the connection reports to its owner. */
export interface GatewayListener {
  dispatch(event: GatewayDispatch): void;
  /** A session started (`resumed` false: a new one, whose missed events are lost) or resumed. */
  connected(resumed: boolean): void;
}

/** The delays between connection attempts that keep failing. */
export interface GatewayBackoff {
  /** The delay before the second attempt, in ms; doubles after each failed one. Default 1000. */
  baseMs?: number;
  /** The longest delay, in ms. Default 60000. */
  maxMs?: number;
}

/** How long shutdown waits for the gateway's close handshake. */
const CLOSE_TIMEOUT_MS = 2000;

/**
 * The Discord gateway connection, by `@discordjs/ws` (one shard): identify with the bot's intents,
 * heartbeats, resume. Around it: every connection attempt after a failed one waits longer (1 s,
 * 2 s, … up to a minute, with jitter), so an unreachable or refusing gateway never makes a tight
 * reconnect loop; a refusal the library gives up on (bad token, intents not allowed) starts a new
 * connection after the same delay; failures are logged through the {@link FailureLog} (once per 10
 * minutes). Nothing it does throws into the app.
 */
export class DiscordGatewayConnection {
  private readonly logger = new Logger('DiscourseConnect');
  private manager?: WebSocketManager;
  private readonly sessions = new Map<number, SessionInfo>();
  /** Connection attempts since the last session started or resumed. */
  private failuresInARow = 0;
  private skipNextWait = false;
  /** The current manager made a connection attempt (counted in `failuresInARow` until it succeeds). */
  private attempted = false;
  /**
   * No Hello since the connection was (re)opened: the library's next session lookup is a
   * connection attempt (it also looks the session up on every dispatch, which must not wait).
   */
  private awaitingHello = true;
  private open_ = false;
  private restartTimer?: NodeJS.Timeout;
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(
    private readonly rest: REST,
    private readonly token: string,
    private readonly listener: GatewayListener,
    private readonly failures: FailureLog,
    backoff: GatewayBackoff = {},
  ) {
    this.baseMs = backoff.baseMs ?? 1000;
    this.maxMs = backoff.maxMs ?? 60_000;
  }

  get running(): boolean {
    return this.manager !== undefined;
  }

  /** A session is open (started or resumed, not closed since). */
  get connected(): boolean {
    return this.open_;
  }

  /** Opens the connection (and keeps it open until `stop`). */
  start(): void {
    if (this.manager) return;
    this.failuresInARow = 0;
    this.open();
  }

  /** Closes the connection; no attempt follows. */
  async stop(): Promise<void> {
    clearTimeout(this.restartTimer);
    const manager = this.manager;
    this.manager = undefined;
    this.open_ = false;
    this.sessions.clear();
    if (manager) await this.close(manager);
  }

  private open(): void {
    const { WebSocketManager, WebSocketShardEvents } = loadDiscordWs();
    const manager: WebSocketManager = new WebSocketManager({
      token: this.token,
      intents: BOT_INTENTS,
      rest: this.rest,
      shardCount: 1,
      // Called by the library before each connection attempt (and on every dispatch): the place
      // for the backoff.
      retrieveSessionInfo: async (shardId) => {
        if (this.awaitingHello) await this.beforeAttempt(manager);
        return this.sessions.get(shardId) ?? null;
      },
      updateSessionInfo: (shardId, info) => {
        if (manager !== this.manager) return;
        if (info) this.sessions.set(shardId, info);
        else this.sessions.delete(shardId);
      },
    });
    this.manager = manager;
    this.skipNextWait = true;
    this.attempted = false;
    this.awaitingHello = true;
    const current = (): boolean => manager === this.manager;
    manager.on(WebSocketShardEvents.Dispatch, (payload) => {
      if (current()) this.listener.dispatch(payload as GatewayDispatch);
    });
    manager.on(WebSocketShardEvents.Ready, () => this.sessionStarted(manager, false));
    manager.on(WebSocketShardEvents.Resumed, () => this.sessionStarted(manager, true));
    manager.on(WebSocketShardEvents.SocketError, (error) => {
      if (current()) this.failures.report(`Discord gateway connection failed: ${error?.message}`);
    });
    // The errors the library gives up on (authentication failed, intents not allowed…).
    manager.on(WebSocketShardEvents.Error, (error) => {
      if (!current()) return;
      this.failures.report(
        `the Discord gateway refused the bot: ${error?.message} (check DISCORD_BOT_TOKEN and the Server Members intent)`,
      );
      this.restartLater(manager);
    });
    manager.on(WebSocketShardEvents.Hello, () => {
      if (current()) this.awaitingHello = false;
    });
    manager.on(WebSocketShardEvents.Closed, (code) => {
      if (!current()) return;
      this.awaitingHello = true;
      this.open_ = false;
      this.logger.debug(`Discord gateway closed (${code})`);
    });
    manager.connect().catch((error: Error) => {
      if (!current()) return;
      this.failures.report(`could not reach the Discord gateway: ${error?.message}`);
      this.restartLater(manager);
    });
  }

  private sessionStarted(manager: WebSocketManager, resumed: boolean): void {
    if (manager !== this.manager) return;
    this.failuresInARow = 0;
    this.open_ = true;
    this.listener.connected(resumed);
  }

  /** Waits before an attempt that follows a failed one; never lets a stopped manager connect again. */
  private async beforeAttempt(manager: WebSocketManager): Promise<void> {
    if (manager !== this.manager) return forever();
    const wait = this.skipNextWait ? 0 : this.delay();
    this.skipNextWait = false;
    this.attempted = true;
    this.failuresInARow++;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref());
    if (manager !== this.manager) return forever();
  }

  /** A new manager after the backoff, in place of one the library gave up on. */
  private restartLater(manager: WebSocketManager): void {
    if (manager !== this.manager) return;
    // A manager that failed before its first attempt (Discord's REST unreachable) counts one failure.
    if (!this.attempted) this.failuresInARow++;
    this.manager = undefined;
    this.open_ = false;
    this.sessions.clear();
    void this.close(manager);
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.manager === undefined && this.restartTimer) this.open();
    }, this.delay());
    this.restartTimer.unref();
  }

  private delay(): number {
    const n = Math.max(1, this.failuresInARow);
    const delay = Math.min(this.maxMs, this.baseMs * 2 ** (n - 1));
    return Math.round(delay * (0.8 + Math.random() * 0.4));
  }

  private async close(manager: WebSocketManager): Promise<void> {
    manager.removeAllListeners();
    // Errors after this point have nobody to tell: swallowed, never thrown into the app.
    const { WebSocketShardEvents } = loadDiscordWs();
    manager.on(WebSocketShardEvents.Error, () => undefined);
    await Promise.race([
      Promise.resolve(manager.destroy()).catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS).unref()),
    ]);
  }
}

/** A promise that never settles: a library call parked on it never goes on. */
function forever(): Promise<never> {
  return new Promise<never>(() => undefined);
}
