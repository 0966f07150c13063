import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  DiscordSimulator,
  DiscourseSimulator,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
} from 'nestjs-discourse-connect-simulators';

/** A running sandbox: simulated Discord and Discourse in this process, and the env that points at them. */
export interface Sandbox {
  env: Record<string, string>;
  discord: DiscordSimulator;
  forum: DiscourseSimulator;
  close(): Promise<void>;
}

/**
 * Starts the simulators next to the app (Discord on PORT+1, the forum on PORT+2) and returns the
 * environment the app needs to use them. The session secret is kept under ./data/ so sessions
 * survive a restart of the sandbox too.
 */
export async function startSandbox(port: number, host = '127.0.0.1'): Promise<Sandbox> {
  const env = sandboxEnv(port, host);
  const publicUrl = env.PUBLIC_URL;
  const connectSecret = env.DISCOURSE_CONNECT_SECRET;
  const discord = new DiscordSimulator({
    clientId: 'sandbox-client-id',
    clientSecret: 'sandbox-client-secret',
    redirectUris: [`${publicUrl}/auth/discord/callback`],
  });
  const forum = new DiscourseSimulator({
    secret: connectSecret,
    connectUrl: `${publicUrl}/discourse/sso`,
    logoutRedirect: `${publicUrl}/discourse/logout`,
    title: 'Sandbox forum',
    apiKey: env.DISCOURSE_API_KEY,
    authOverridesName: true,
    overridesAvatar: true,
  });
  await discord.listen(port + 1, host);
  await forum.listen(port + 2, host);
  return {
    env,
    discord,
    forum,
    close: async () => {
      await Promise.all([discord.close(), forum.close()]);
    },
  };
}

/**
 * The environment of the sandbox on `port`: simulated Discord on port+1, the forum on port+2, and
 * secrets kept under ./data/. The CLI uses it too, to talk to a running sandbox.
 */
export function sandboxEnv(port: number, host = '127.0.0.1'): Record<string, string> {
  return {
    DISCORD_CLIENT_ID: 'sandbox-client-id',
    DISCORD_CLIENT_SECRET: 'sandbox-client-secret',
    DISCORD_BASE_URL: `http://${host}:${port + 1}`,
    DISCOURSE_URL: `http://${host}:${port + 2}`,
    DISCOURSE_CONNECT_SECRET: persistentSecret('sandbox-connect-secret'),
    PUBLIC_URL: `http://${host}:${port}`,
    SESSION_SECRET: persistentSecret('sandbox-session-secret'),
    DISCOURSE_API_KEY: persistentSecret('sandbox-api-key'),
    DISCORD_GUILD_ID: SIM_GUILD_ID,
    DISCOURSE_GROUP_MAP: `${SIM_GUILD_ROLES.member}=members,${SIM_GUILD_ROLES.moderator}=moderators`,
  };
}

function persistentSecret(name: string): string {
  const dir = resolve('data');
  const file = resolve(dir, name);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  writeFileSync(file, secret, { mode: 0o600 });
  return secret;
}
