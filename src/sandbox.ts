import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  DiscordSimulator,
  DiscourseSimulator,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
  VanillaSimulator,
} from 'nestjs-discourse-connect-simulators';

/**
 * A running sandbox: simulated Discord (OAuth, bot REST, gateway, and a members page to change roles),
 * two Discourse forums and a Vanilla forum in this process, and the env that points at them.
 */
export interface Sandbox {
  env: Record<string, string>;
  discord: DiscordSimulator;
  /** The first forum, the one of the single-forum variables (named `default`). */
  forum: DiscourseSimulator;
  /** The second forum, `team`, from `DISCOURSE_FORUM_TEAM_*`. */
  teamForum: DiscourseSimulator;
  /** The Vanilla forum, from `VANILLA_URL`… (jsConnect v3). */
  vanillaForum: VanillaSimulator;
  close(): Promise<void>;
}

/**
 * Starts the simulators next to the app (Discord on PORT+1, the forum on PORT+2, the team forum on
 * PORT+3, in /team, the Vanilla forum on PORT+4, in /vanilla) and returns the environment the app needs to use them. The session secret is kept under
 * ./data/ so sessions survive a restart of the sandbox too.
 */
export async function startSandbox(port: number, host = '127.0.0.1'): Promise<Sandbox> {
  const env = sandboxEnv(port, host);
  const publicUrl = env.PUBLIC_URL;
  const connectSecret = env.DISCOURSE_CONNECT_SECRET;
  const discord = new DiscordSimulator({
    clientId: 'sandbox-client-id',
    clientSecret: 'sandbox-client-secret',
    redirectUris: [`${publicUrl}/auth/discord/callback`],
    botToken: env.DISCORD_BOT_TOKEN,
  });
  const forumOf = (
    secret: string,
    apiKey: string,
    title: string,
    basePath = '',
    groups?: string[],
  ) =>
    new DiscourseSimulator({
      secret,
      basePath,
      groups,
      connectUrl: `${publicUrl}/discourse/sso`,
      logoutRedirect: `${publicUrl}/discourse/logout`,
      title,
      apiKey,
      authOverridesName: true,
      overridesAvatar: true,
    });
  const forum = forumOf(connectSecret, env.DISCOURSE_API_KEY, 'Sandbox forum');
  const teamForum = forumOf(
    env.DISCOURSE_FORUM_TEAM_SECRET,
    env.DISCOURSE_FORUM_TEAM_API_KEY,
    'Sandbox team forum',
    TEAM_FORUM_PATH,
    ['team'],
  );
  await discord.listen(port + 1, host);
  await forum.listen(port + 2, host);
  await teamForum.listen(port + 3, host);
  // Vanilla (jsConnect v3) on PORT+4, in /vanilla so its cookies stay apart from the forums'.
  const vanillaForum = new VanillaSimulator({
    clientId: env.VANILLA_CLIENT_ID,
    secret: env.VANILLA_SECRET,
    authenticateUrl: `${publicUrl}/vanilla/connect`,
    signOutUrl: `${publicUrl}/vanilla/logout`,
    trustedOrigins: [publicUrl],
    basePath: VANILLA_FORUM_PATH,
    title: 'Sandbox Vanilla forum',
  });
  await vanillaForum.listen(port + 4, host);
  return {
    env,
    discord,
    forum,
    teamForum,
    vanillaForum,
    close: async () => {
      await Promise.all([discord.close(), forum.close(), teamForum.close(), vanillaForum.close()]);
    },
  };
}

/**
 * The environment of the sandbox on `port`: simulated Discord on port+1, the forum on port+2 (the
 * single-forum variables: the forum named `default`), a second forum `team` on port+3
 * (`DISCOURSE_FORUM_TEAM_*`, with its own group map), and secrets kept under ./data/. The CLI uses it
 * too, to talk to a running sandbox.
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
    DISCOURSE_FORUM_TEAM_URL: `http://${host}:${port + 3}${TEAM_FORUM_PATH}`,
    DISCOURSE_FORUM_TEAM_SECRET: persistentSecret('sandbox-team-connect-secret'),
    DISCOURSE_FORUM_TEAM_API_KEY: persistentSecret('sandbox-team-api-key'),
    DISCOURSE_FORUM_TEAM_GROUP_MAP: `${SIM_GUILD_ROLES.moderator}=team`,
    // The simulated Discord's bot: its gateway and member listing answer on DISCORD_BASE_URL.
    DISCORD_BOT_TOKEN: SANDBOX_BOT_TOKEN,
    DISCORD_RECONCILE_SECONDS: '300',
    // The sandbox's own page on the simulated Discord (roles, kick, ban), linked from the home page.
    [SANDBOX_MEMBERS_PAGE_VAR]: `http://${host}:${port + 1}/sandbox/members`,
    VANILLA_URL: `http://${host}:${port + 4}${VANILLA_FORUM_PATH}`,
    VANILLA_CLIENT_ID: 'sandbox-vanilla',
    VANILLA_SECRET: persistentSecret('sandbox-vanilla-secret'),
    VANILLA_ROLE_MAP: `${SIM_GUILD_ROLES.moderator}=Moderator`,
  };
}

/** The simulated bot's token (not a secret: it only opens the simulated Discord of this process). */
const SANDBOX_BOT_TOKEN = 'sandbox-bot-token';

/** Names the URL of the simulated Discord's members page, for the home page's link (sandbox only). */
export const SANDBOX_MEMBERS_PAGE_VAR = 'SANDBOX_DISCORD_MEMBERS_URL';

/**
 * The team forum lives in a subfolder: browsers keep cookies per host, not per port, and both
 * simulated forums name their session cookie the same, so the path keeps their sessions apart.
 */
const TEAM_FORUM_PATH = '/team';
/** The Vanilla forum's subfolder. */
const VANILLA_FORUM_PATH = '/vanilla';

function persistentSecret(name: string): string {
  const dir = resolve('data');
  const file = resolve(dir, name);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  writeFileSync(file, secret, { mode: 0o600 });
  return secret;
}
