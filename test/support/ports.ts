import { createServer } from 'node:net';

/** A free loopback port, so a server's URL is known before it starts. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A port P on loopback with P+1 to P+4 free too (the sandbox's Discord, two forums and Vanilla). */
export async function freePortRun(): Promise<number> {
  const listen = (port: number) =>
    new Promise<ReturnType<typeof createServer> | null>((done) => {
      const server = createServer();
      server.once('error', () => done(null));
      server.listen(port, '127.0.0.1', () => done(server));
    });
  const close = (server: ReturnType<typeof createServer>) =>
    new Promise<void>((done) => server.close(() => done()));
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await listen(0);
    if (!first) continue;
    const port = (first.address() as { port: number }).port;
    const held = [first];
    for (const next of [port + 1, port + 2, port + 3, port + 4]) {
      const server = next <= 65535 ? await listen(next) : null;
      if (server) held.push(server);
    }
    await Promise.all(held.map(close));
    if (held.length === 5) return port;
  }
  throw new Error('Could not find five consecutive free ports on 127.0.0.1');
}
