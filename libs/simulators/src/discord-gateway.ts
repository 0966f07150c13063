import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { randomHex } from './http-helpers';

/** What the gateway asks of the simulator it belongs to. */
export interface GatewayHost {
  /** Whether `token` is the bot's token (the raw token, as Identify carries it). */
  checkToken(token: string): boolean;
  /** Privileged intent bits the application has turned on (others are refused with 4014). */
  enabledPrivilegedIntents(): number;
  /** The bot's user object. */
  botUser(): Record<string, unknown>;
  /** The guild id (for READY and sharding). */
  guildId(): string;
  /** The GUILD_CREATE payload. */
  guildCreate(): Record<string, unknown>;
}

export interface GatewayStats {
  /** WebSocket connections accepted. */
  connections: number;
  /** Of those, connections to `/gateway/resume` (the `resume_gateway_url`). */
  resumeUrlConnections: number;
  /** Connections refused while the gateway was down. */
  refused: number;
  /** Successful Identify payloads (each starts a session). */
  identifies: number;
  /** Successful resumes. */
  resumes: number;
  /** Resume attempts answered with Invalid Session (op 9). */
  failedResumes: number;
  heartbeats: number;
  /** Dispatches sent (replays included). */
  dispatches: number;
  /** Close codes the gateway closed connections with, in order. */
  closeCodes: number[];
}

interface Dispatch {
  s: number;
  t: string;
  d: unknown;
}

interface Session {
  id: string;
  intents: number;
  shard: [number, number];
  seq: number;
  /** Dispatches kept for a resume, oldest first. */
  buffer: Dispatch[];
  /** Whether dispatches older than the buffer were dropped (a resume from before them fails). */
  trimmedBefore: number;
  conn: Connection | null;
  /** When the last connection of the session closed (ms), while it has none. */
  disconnectedAt: number | null;
}

interface Connection {
  ws: WebSocket;
  session: Session | null;
  /** `ws://<Host header>`: the base of the `resume_gateway_url` this connection is given. */
  wsBase: string;
}

const PRIVILEGED = (1 << 1) | (1 << 8) | (1 << 15);
/** Intent bits Discord defines (0–25 with gaps); anything else is 4013. */
const KNOWN_INTENTS = 0b11_1111_0011_1111_1111_1111_1111;
/** Dispatches kept per session for a resume. */
const MAX_BUFFER = 20_000;
const HEARTBEAT_ACK = JSON.stringify({ op: 11, d: null, s: null, t: null });

/** Gateway close codes (Discord's). */
export const GATEWAY_CLOSE = {
  UnknownOpcode: 4001,
  DecodeError: 4002,
  NotAuthenticated: 4003,
  AuthenticationFailed: 4004,
  AlreadyAuthenticated: 4005,
  InvalidSeq: 4007,
  InvalidShard: 4010,
  InvalidApiVersion: 4012,
  InvalidIntents: 4013,
  DisallowedIntents: 4014,
} as const;

const CLOSE_REASONS: Record<number, string> = {
  4001: 'Unknown opcode.',
  4002: 'Error while decoding payload.',
  4003: 'Not authenticated.',
  4004: 'Authentication failed.',
  4005: 'Already authenticated.',
  4007: 'Invalid seq.',
  4010: 'Invalid shard.',
  4012: 'Invalid API version.',
  4013: 'Invalid intent(s).',
  4014: 'Disallowed intent(s).',
};

/**
 * The simulated Discord gateway (API v10, JSON encoding, no compression), served on the simulator's
 * port at `/gateway` (and `/gateway/resume`, the `resume_gateway_url`). Hello, Identify, heartbeats,
 * Resume with replay of the dispatches missed since `seq`, Invalid Session, Reconnect, and the guild
 * member and ban dispatches, each only to sessions with the intent it needs.
 */
export class SimulatedGateway {
  /** `heartbeat_interval` sent in Hello, in ms (Discord's is about 41 s). */
  heartbeatIntervalMs = 41_250;
  /** How long a session without a connection can still be resumed, in ms. Default 5 minutes. */
  resumeWindowMs = 300_000;
  /** Heartbeats are acknowledged (op 11). False: a "zombie" connection, which clients close and resume. */
  ackHeartbeats = true;
  readonly stats: GatewayStats = emptyStats();

  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096 * 1024 });
  private readonly sessions = new Map<string, Session>();
  private readonly connections = new Set<Connection>();
  private isDown = false;

  constructor(private readonly host: GatewayHost) {}

  /** Whether new connections are refused (see {@link down}). */
  get refusing(): boolean {
    return this.isDown;
  }

  /** Connections with an identified or resumed session. */
  get openSessions(): number {
    let n = 0;
    for (const c of this.connections) if (c.session && c.ws.readyState === WebSocket.OPEN) n++;
    return n;
  }

  /** Sessions that exist (connected or waiting for a resume). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** An outage: new connections are refused (HTTP 503) and open ones are cut without a close frame. */
  down(): void {
    this.isDown = true;
    this.dropConnections();
  }

  /** Accepts connections again; sessions from before the outage can still resume. */
  up(): void {
    this.isDown = false;
  }

  /** Cuts every connection without a clean close (the client sees 1006 and resumes). */
  dropConnections(): void {
    for (const c of this.connections) c.ws.terminate();
  }

  /** Sends op 7 Reconnect to every session: the client closes and resumes. */
  sendReconnect(): void {
    for (const c of this.connections) {
      if (c.session) this.sendRaw(c, { op: 7, d: null, s: null, t: null });
    }
  }

  /** Ends every session with op 9 (not resumable): clients identify again. */
  invalidateSessions(): void {
    for (const c of this.connections) {
      if (c.session) this.sendRaw(c, { op: 9, d: false, s: null, t: null });
      c.session = null;
    }
    this.sessions.clear();
  }

  /** Sends a dispatch to every session holding `intent` whose shard carries the guild. */
  dispatch(t: string, d: Record<string, unknown>, intent: number): void {
    const guild = BigInt(this.host.guildId());
    for (const session of this.sessions.values()) {
      if (this.expired(session)) {
        this.sessions.delete(session.id);
        continue;
      }
      if ((session.intents & intent) !== intent) continue;
      const [id, count] = session.shard;
      if (Number((guild >> 22n) % BigInt(count)) !== id) continue;
      this.deliver(session, t, d);
    }
  }

  /** Everything closed and forgotten, the gateway up, settings and counters back to defaults. */
  reset(): void {
    this.dropConnections();
    this.sessions.clear();
    this.isDown = false;
    this.heartbeatIntervalMs = 41_250;
    this.resumeWindowMs = 300_000;
    this.ackHeartbeats = true;
    Object.assign(this.stats, emptyStats());
  }

  /** Closes every connection and forgets the sessions (the simulator can listen again afterwards). */
  close(): void {
    this.dropConnections();
    this.sessions.clear();
  }

  /** Takes an HTTP upgrade for `/gateway` or `/gateway/resume`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    const path = url.pathname.replace(/\/+$/, '');
    if (path !== '/gateway' && path !== '/gateway/resume') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (this.isDown) {
      this.stats.refused++;
      socket.end(
        'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
      );
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.stats.connections++;
      if (path === '/gateway/resume') this.stats.resumeUrlConnections++;
      const conn: Connection = {
        ws,
        session: null,
        wsBase: `ws://${req.headers.host ?? '127.0.0.1'}`,
      };
      this.connections.add(conn);
      ws.on('close', () => {
        this.connections.delete(conn);
        if (conn.session && conn.session.conn === conn) {
          conn.session.conn = null;
          conn.session.disconnectedAt = Date.now();
        }
      });
      ws.on('error', () => ws.terminate());
      ws.on('message', (data, isBinary) => this.onMessage(conn, data, isBinary));
      const version = url.searchParams.get('v');
      if (version !== null && version !== '10') {
        this.closeWith(conn, GATEWAY_CLOSE.InvalidApiVersion);
        return;
      }
      const encoding = url.searchParams.get('encoding') ?? 'json';
      if (encoding !== 'json') {
        this.closeWith(conn, GATEWAY_CLOSE.DecodeError);
        return;
      }
      this.sendRaw(conn, {
        op: 10,
        d: {
          heartbeat_interval: this.heartbeatIntervalMs,
          _trace: ['["gateway-sim",{"micros":0}]'],
        },
        s: null,
        t: null,
      });
    });
  }

  private onMessage(conn: Connection, data: RawData, isBinary: boolean): void {
    if (isBinary) return this.closeWith(conn, GATEWAY_CLOSE.DecodeError);
    let payload: { op?: unknown; d?: unknown };
    try {
      payload = JSON.parse(rawText(data)) as { op?: unknown; d?: unknown };
    } catch {
      return this.closeWith(conn, GATEWAY_CLOSE.DecodeError);
    }
    if (!payload || typeof payload !== 'object') return this.closeWith(conn, 4002);
    const d = payload.d as Record<string, unknown> | null | undefined;
    switch (payload.op) {
      case 1:
        this.stats.heartbeats++;
        if (this.ackHeartbeats && conn.ws.readyState === WebSocket.OPEN)
          conn.ws.send(HEARTBEAT_ACK);
        return;
      case 2:
        return this.identify(conn, d);
      case 6:
        return this.resume(conn, d);
      case 3:
      case 4:
      case 8:
        if (!conn.session) return this.closeWith(conn, GATEWAY_CLOSE.NotAuthenticated);
        return;
      default:
        return this.closeWith(conn, GATEWAY_CLOSE.UnknownOpcode);
    }
  }

  private identify(conn: Connection, d: Record<string, unknown> | null | undefined): void {
    if (conn.session) return this.closeWith(conn, GATEWAY_CLOSE.AlreadyAuthenticated);
    if (!d || typeof d !== 'object') return this.closeWith(conn, GATEWAY_CLOSE.DecodeError);
    if (typeof d.token !== 'string' || !this.host.checkToken(stripBot(d.token)))
      return this.closeWith(conn, GATEWAY_CLOSE.AuthenticationFailed);
    const intents = d.intents;
    if (
      typeof intents !== 'number' ||
      !Number.isInteger(intents) ||
      intents < 0 ||
      (intents & ~KNOWN_INTENTS) !== 0
    )
      return this.closeWith(conn, GATEWAY_CLOSE.InvalidIntents);
    if ((intents & PRIVILEGED & ~this.host.enabledPrivilegedIntents()) !== 0)
      return this.closeWith(conn, GATEWAY_CLOSE.DisallowedIntents);
    let shard: [number, number] = [0, 1];
    if (d.shard !== undefined) {
      const s = d.shard;
      if (
        !Array.isArray(s) ||
        s.length !== 2 ||
        !s.every((x) => Number.isInteger(x)) ||
        s[1] < 1 ||
        s[0] < 0 ||
        s[0] >= s[1]
      )
        return this.closeWith(conn, GATEWAY_CLOSE.InvalidShard);
      shard = [s[0] as number, s[1] as number];
    }
    this.stats.identifies++;
    const session: Session = {
      id: randomHex(16),
      intents,
      shard,
      seq: 0,
      buffer: [],
      trimmedBefore: 0,
      conn,
      disconnectedAt: null,
    };
    this.sessions.set(session.id, session);
    conn.session = session;
    const guildId = this.host.guildId();
    const onShard = Number((BigInt(guildId) >> 22n) % BigInt(shard[1])) === shard[0];
    this.deliver(session, 'READY', {
      v: 10,
      user: this.host.botUser(),
      guilds: onShard ? [{ id: guildId, unavailable: true }] : [],
      session_id: session.id,
      session_type: 'normal',
      resume_gateway_url: `${conn.wsBase}/gateway/resume`,
      shard,
      application: { id: this.host.botUser().id, flags: 0 },
      private_channels: [],
      presences: [],
      relationships: [],
      guild_join_requests: [],
      geo_ordered_rtc_regions: [],
      user_settings: {},
      auth: {},
      _trace: ['["gateway-sim",{"micros":0}]'],
    });
    if (onShard && (intents & 1) === 1)
      this.deliver(session, 'GUILD_CREATE', this.host.guildCreate());
  }

  private resume(conn: Connection, d: Record<string, unknown> | null | undefined): void {
    if (conn.session) return this.closeWith(conn, GATEWAY_CLOSE.AlreadyAuthenticated);
    if (!d || typeof d !== 'object') return this.closeWith(conn, GATEWAY_CLOSE.DecodeError);
    if (typeof d.token !== 'string' || !this.host.checkToken(stripBot(d.token)))
      return this.closeWith(conn, GATEWAY_CLOSE.AuthenticationFailed);
    const session = typeof d.session_id === 'string' ? this.sessions.get(d.session_id) : undefined;
    const seq = d.seq === null ? 0 : d.seq;
    if (
      !session ||
      this.expired(session) ||
      typeof seq !== 'number' ||
      !Number.isInteger(seq) ||
      seq < session.trimmedBefore
    ) {
      if (session && this.expired(session)) this.sessions.delete(session.id);
      this.stats.failedResumes++;
      this.sendRaw(conn, { op: 9, d: false, s: null, t: null });
      return;
    }
    if (seq > session.seq) return this.closeWith(conn, GATEWAY_CLOSE.InvalidSeq);
    if (session.conn && session.conn !== conn) session.conn.ws.terminate();
    session.conn = conn;
    session.disconnectedAt = null;
    conn.session = session;
    this.stats.resumes++;
    for (const event of session.buffer) {
      if (event.s > seq) this.sendDispatch(conn, event);
    }
    this.deliver(session, 'RESUMED', { _trace: ['["gateway-sim",{"micros":0}]'] });
  }

  private expired(session: Session): boolean {
    return (
      session.conn === null &&
      session.disconnectedAt !== null &&
      Date.now() - session.disconnectedAt > this.resumeWindowMs
    );
  }

  private deliver(session: Session, t: string, d: unknown): void {
    const event: Dispatch = { s: ++session.seq, t, d };
    session.buffer.push(event);
    if (session.buffer.length > MAX_BUFFER) {
      const dropped = session.buffer.splice(0, session.buffer.length - MAX_BUFFER);
      session.trimmedBefore = dropped[dropped.length - 1].s;
    }
    if (session.conn) this.sendDispatch(session.conn, event);
  }

  private sendDispatch(conn: Connection, event: Dispatch): void {
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    this.stats.dispatches++;
    conn.ws.send(JSON.stringify({ op: 0, t: event.t, s: event.s, d: event.d }));
  }

  private sendRaw(conn: Connection, payload: Record<string, unknown>): void {
    if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify(payload));
  }

  private closeWith(conn: Connection, code: number): void {
    this.stats.closeCodes.push(code);
    if (conn.session) {
      this.sessions.delete(conn.session.id);
      conn.session = null;
    }
    conn.ws.close(code, CLOSE_REASONS[code] ?? '');
  }
}

function emptyStats(): GatewayStats {
  return {
    connections: 0,
    resumeUrlConnections: 0,
    refused: 0,
    identifies: 0,
    resumes: 0,
    failedResumes: 0,
    heartbeats: 0,
    dispatches: 0,
    closeCodes: [],
  };
}

function stripBot(token: string): string {
  return token.startsWith('Bot ') ? token.slice(4) : token;
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
