import { Command, CommandRunner } from 'nest-commander';
import {
  DiscourseAdminService,
  DiscourseApiError,
  DiscourseConnectSettings,
  type DiscourseConnectForum,
} from 'nestjs-discourse-connect';
import { findAppRoutes, type AppRoutes } from './app-routes';

type Mark = 'ok' | 'fail' | 'unknown';

/** What to do when the shared-secret probe cannot decide. */
const BY_HAND =
  "Check by hand: DISCOURSE_CONNECT_SECRET must equal the forum's discourse_connect_secret " +
  '(Admin → Settings → Login; paste it again on both sides if unsure), then sign in once through the forum.';
const SYMBOL: Record<Mark, string> = { ok: '[ok]  ', fail: '[FAIL]', unknown: '[?]   ' };

/**
 * `check`: a checklist of the forum's side of the setup, read through its API. Says plainly what it
 * could not check. Exits non-zero when something is wrong.
 */
@Command({
  name: 'check',
  description: "Check the configuration and the forum's DiscourseConnect settings",
})
export class CheckCommand extends CommandRunner {
  private failures = 0;

  constructor(
    private readonly settings: DiscourseConnectSettings,
    private readonly admin: DiscourseAdminService,
  ) {
    super();
  }

  async run(): Promise<void> {
    this.line('ok', 'Configuration is valid (every variable passed validation at boot).');
    let routes: AppRoutes;
    try {
      routes = await findAppRoutes(this.settings.publicUrl);
    } catch (error) {
      this.line('fail', (error as Error).message);
      process.exitCode = 1;
      return;
    }
    console.log(`  Expecting the module's routes as found from ${routes.source}.`);
    for (const forum of this.settings.forums) await this.checkForum(forum, routes);
    if (this.failures) {
      console.log(`\n${this.failures} problem(s) found.`);
      process.exitCode = 1;
    } else {
      console.log('\nNo problems found.');
    }
  }

  private async checkForum(forum: DiscourseConnectForum, routes: AppRoutes): Promise<void> {
    console.log(`\nForum ${forum.url}`);
    try {
      const res = await fetch(`${forum.url}/srv/status`, { signal: AbortSignal.timeout(10_000) });
      this.line(
        res.ok ? 'ok' : 'fail',
        res.ok ? 'The forum is reachable.' : `The forum answered ${res.status} to /srv/status.`,
      );
    } catch {
      this.line('fail', `The forum at ${forum.url} could not be reached: check DISCOURSE_URL.`);
      return;
    }
    if (!forum.api) {
      this.line(
        'unknown',
        'No DISCOURSE_API_KEY: the forum settings and the shared secret cannot be checked. ' +
          `Check by hand that the forum's discourse_connect_url is ${routes.connectUrl} and its logout_redirect ${routes.logoutRedirect}. ${BY_HAND}`,
      );
      return;
    }
    try {
      const me = await this.admin.get<{ current_user?: { username?: string } }>(
        '/session/current.json',
        forum.name,
      );
      this.line(
        'ok',
        `The API key is accepted (acting as ${me.current_user?.username ?? forum.api.username}).`,
      );
    } catch (error) {
      this.line(
        'fail',
        `The API key was refused: ${describe(error)}. Create an admin key with the needed scopes.`,
      );
      return;
    }
    try {
      const secret = await this.admin.checkSharedSecret(forum.name);
      if (secret === 'match')
        this.line('ok', "DISCOURSE_CONNECT_SECRET matches the forum's discourse_connect_secret.");
      else if (secret === 'mismatch') {
        this.line(
          'fail',
          "DISCOURSE_CONNECT_SECRET does not match the forum's discourse_connect_secret.",
        );
      } else if (secret === 'disabled')
        this.line(
          'fail',
          'DiscourseConnect is not enabled on the forum (enable_discourse_connect).',
        );
      else this.line('unknown', `Could not tell whether the shared secret matches. ${BY_HAND}`);
    } catch (error) {
      this.line('unknown', `Could not check the shared secret: ${describe(error)}. ${BY_HAND}`);
    }
    let settings: Map<string, unknown>;
    try {
      const body = await this.admin.get<{ site_settings?: { setting: string; value: unknown }[] }>(
        '/admin/site_settings.json',
        forum.name,
      );
      settings = new Map((body.site_settings ?? []).map((s) => [s.setting, s.value]));
    } catch (error) {
      this.line(
        'unknown',
        `Could not read the forum's site settings (${describe(error)}); check them by hand.`,
      );
      return;
    }
    const expectSetting = (name: string, expected: unknown, hint: string) => {
      if (!settings.has(name))
        return this.line('unknown', `The forum did not show ${name}; check it by hand.`);
      const value = settings.get(name);
      const same = String(value).replace(/\/+$/, '') === String(expected).replace(/\/+$/, '');
      this.line(
        same ? 'ok' : 'fail',
        same ? `${name} is ${String(value)}.` : `${name} is "${String(value)}"; ${hint}`,
      );
    };
    expectSetting('enable_discourse_connect', true, "turn it on in the forum's Login settings.");
    const { minUsernameLength, maxUsernameLength } = this.settings.sso;
    expectSetting(
      'min_username_length',
      minUsernameLength,
      `the module makes usernames of at least ${minUsernameLength} characters: set the module's sso.minUsernameLength to the forum's value.`,
    );
    expectSetting(
      'max_username_length',
      maxUsernameLength,
      `the module makes usernames of at most ${maxUsernameLength} characters: set the module's sso.maxUsernameLength to the forum's value.`,
    );
    expectSetting('discourse_connect_url', routes.connectUrl, `set it to ${routes.connectUrl}.`);
    expectSetting(
      'logout_redirect',
      routes.logoutRedirect,
      `set it to ${routes.logoutRedirect} so signing out there signs out here.`,
    );
  }

  private line(mark: Mark, text: string): void {
    if (mark === 'fail') this.failures++;
    console.log(`  ${SYMBOL[mark]} ${text}`);
  }
}

function describe(error: unknown): string {
  return error instanceof DiscourseApiError
    ? error.message
    : ((error as Error)?.message ?? String(error));
}
