/**
 * Where the running app serves the module's routes, for `check`: the CLI runs outside the app's
 * main.ts, so it does not see a global prefix or RouterModule path. It learns them from
 * DISCOURSE_CONNECT_MOUNT_PATH when set, else from the running app's `GET <PUBLIC_URL>/health`,
 * else assumes the routes are at the root.
 */
export interface AppRoutes {
  /** The forum's `discourse_connect_url`. */
  connectUrl: string;
  /** The forum's `logout_redirect`. */
  logoutRedirect: string;
  /** Where these came from, said on the checklist. */
  source: string;
}

export const MOUNT_PATH_VARIABLE = 'DISCOURSE_CONNECT_MOUNT_PATH';

/** A path prefix: `/community`, `/apps/community`; `''` or `/` for the root. */
const MOUNT_PATH = /^(?:\/[A-Za-z0-9._~!$&'()*+,;=:@-]+)*\/?$/;

export async function findAppRoutes(
  publicUrl: string,
  env: NodeJS.ProcessEnv = process.env,
  fetchImpl: typeof fetch = fetch,
): Promise<AppRoutes> {
  const at = (mount: string, source: string): AppRoutes => ({
    connectUrl: `${publicUrl}${mount}/discourse/sso`,
    logoutRedirect: `${publicUrl}${mount}/discourse/logout`,
    source,
  });
  const given = env[MOUNT_PATH_VARIABLE];
  if (given !== undefined && given !== '') {
    const trimmed = given.trim();
    if (!MOUNT_PATH.test(trimmed)) {
      throw new Error(
        `${MOUNT_PATH_VARIABLE} must be a path such as /community (or / for the root); got "${given}".`,
      );
    }
    return at(trimmed.replace(/\/+$/, ''), `${MOUNT_PATH_VARIABLE}=${trimmed}`);
  }
  try {
    const res = await fetchImpl(`${publicUrl}/health`, {
      signal: AbortSignal.timeout(3_000),
      redirect: 'manual',
    });
    const body = (await res.json()) as {
      routes?: { connectUrl?: unknown; logoutRedirect?: unknown };
    };
    const { connectUrl, logoutRedirect } = body?.routes ?? {};
    // Only URLs on this app's public URL are believed.
    const ours = (u: unknown): u is string =>
      typeof u === 'string' && u.startsWith(`${publicUrl}/`);
    if (ours(connectUrl) && ours(logoutRedirect)) {
      return { connectUrl, logoutRedirect, source: `the running app (${publicUrl}/health)` };
    }
  } catch {
    // Not running, or not this app: fall through.
  }
  return at(
    '',
    `routes at the root: the app did not answer ${publicUrl}/health; set ${MOUNT_PATH_VARIABLE} when its routes are under a prefix`,
  );
}
