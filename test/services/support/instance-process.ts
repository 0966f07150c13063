import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { DiscourseConnectModuleOptions } from 'nestjs-discourse-connect/internal';
import { FORUM_SECRET, SESSION_SECRET, freePort } from '../../support/harness';
import { API_KEY, waitFor } from './flows';

/** An app instance in its own process (test/services/support/instance.ts), sharing PostgreSQL and Redis. */
export class Instance {
  private child?: ChildProcess;
  output = '';
  constructor(
    readonly url: string,
    private readonly env: Record<string, string>,
  ) {}

  /**
   * An instance on a free port, on the shared database, signing in with the simulated Discord and
   * serving the simulated forum; `more` adds (or overrides) module options, e.g. `sync` or `redis`.
   */
  static async create(setup: {
    databaseUrl: string;
    discordUrl: string;
    forumUrl: string;
    more: Partial<DiscourseConnectModuleOptions>;
  }): Promise<Instance> {
    const url = `http://127.0.0.1:${await freePort()}`;
    const options: DiscourseConnectModuleOptions = {
      forums: [
        { url: setup.forumUrl, secret: FORUM_SECRET, api: { key: API_KEY, timeoutMs: 3000 } },
      ],
      discord: {
        clientId: 'sandbox-client-id',
        clientSecret: 'sandbox-client-secret',
        baseUrl: setup.discordUrl,
      },
      publicUrl: url,
      session: { secret: SESSION_SECRET },
      rateLimit: false,
      ...setup.more,
    };
    return new Instance(url, {
      DATABASE_URL: setup.databaseUrl,
      DC_INSTANCE_OPTIONS: JSON.stringify(options),
    });
  }

  /** Stops both (printing their output first when `DC_INSTANCE_LOGS` is set). */
  static async stopAll(...instances: (Instance | undefined)[]): Promise<void> {
    if (process.env.DC_INSTANCE_LOGS) console.log(...instances.map((i) => i?.output));
    await Promise.all(instances.map((i) => i?.stop()));
  }

  async start(): Promise<void> {
    const root = join(__dirname, '..', '..', '..');
    this.child = spawn(
      process.execPath,
      ['-r', join(__dirname, 'ts-register.js'), join(__dirname, 'instance.ts')],
      {
        cwd: root,
        env: { ...process.env, ...this.env, PORT: new URL(this.url).port },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const child = this.child;
    child.stdout!.on('data', (d) => (this.output += d));
    child.stderr!.on('data', (d) => (this.output += d));
    await waitFor(
      () => {
        if (child.exitCode !== null)
          throw new Error(`instance exited (${child.exitCode}):\n${this.output}`);
        return this.output.includes('READY');
      },
      `the instance on ${this.url}`,
      60_000,
    );
  }

  /** SIGKILL: no shutdown hook, no lock released, nothing flushed. */
  kill(): void {
    this.child?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
