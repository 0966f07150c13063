import type { RunningServer } from './servers';

/** Jest globalTeardown of the `services` project: stops the servers globalSetup started. */
export default async function globalTeardown(): Promise<void> {
  const servers = (globalThis as { __dcServers?: RunningServer[] }).__dcServers ?? [];
  await Promise.all(servers.map((s) => s.stop()));
}
