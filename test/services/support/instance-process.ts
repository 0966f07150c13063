import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from './flows';

/** An app instance in its own process (test/services/support/instance.ts), sharing PostgreSQL and Redis. */
export class Instance {
  private child?: ChildProcess;
  output = '';
  constructor(
    readonly url: string,
    private readonly env: Record<string, string>,
  ) {}

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
