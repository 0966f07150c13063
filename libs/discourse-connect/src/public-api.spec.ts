import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as api from './index';

/**
 * The package's public API, pinned: a name added to or removed from `index.ts` fails here, so an API
 * change is always deliberate (update this list, the README and the CHANGELOG together).
 */
const VALUES = [
  'BadSsoRequestException',
  'DISCOURSE_CONNECT_ENTITIES',
  'DISCOURSE_CONNECT_MIGRATIONS',
  'DISCOURSE_CONNECT_OPTIONS',
  'DiscordAuthGuard',
  'DiscordCallbackGuard',
  'DiscordSignInException',
  'DiscourseAdminService',
  'DiscourseApiError',
  'DiscourseApiNotConfiguredError',
  'DiscourseConnectConfigurationError',
  'DiscourseConnectEnvironment',
  'DiscourseConnectEvents',
  'DiscourseConnectExceptionFilter',
  'DiscourseConnectFilter',
  'DiscourseConnectHttpException',
  'DiscourseConnectModule',
  'DiscourseConnectProtocolError',
  'DiscourseConnectRoutes',
  'DiscourseConnectSameOriginGuard',
  'DiscourseConnectSettings',
  'DiscourseConnectSyncDelivery',
  'DiscourseConnectSyncQueue',
  'DiscourseConnectUserStore',
  'DiscourseConnectUsersService',
  'DiscourseLifecycleInterceptor',
  'DiscourseRateLimitError',
  'DiscourseMemberLifecycle',
  'ForgetDiscourseMember',
  'ForgetDiscourseMemberInterceptor',
  'MemberLifecycleError',
  'SuspendOnDiscourse',
  'UnsuspendOnDiscourse',
  'InjectDiscourseConnectOptions',
  'LogOutOfDiscourse',
  'SsoForbiddenException',
  'SyncToDiscourse',
  'boundForLog',
  'buildSignedPayload',
  'discordAvatarUrl',
  'discourseConnectConfig',
  'discourseConnectOptionsFromEnv',
  'findCutEnvValues',
  'validateDiscourseConnectEnv',
  'verifyAndDecode',
  'JsConnectProtocolError',
  'buildJsConnectResponse',
  'vanillaUsername',
  'verifyJsConnectRequest',
];

const TYPES = [
  'CanSignInContext',
  'DiscordGuildLeaveAction',
  'DiscordMemberEvent',
  'DiscordReconcileEvent',
  'DiscourseConnectBotOptions',
  'DiscordMetadata',
  'DiscordOptions',
  'DiscourseApiOptions',
  'DiscourseConnectDatabaseOptions',
  'DiscourseConnectErrorCode',
  'DiscourseConnectFailedJob',
  'DiscourseConnectField',
  'DiscourseConnectFilterName',
  'DiscourseConnectFilters',
  'DiscourseConnectForum',
  'DiscourseConnectGroupsOptions',
  'DiscourseConnectModuleOptions',
  'DiscourseConnectPayload',
  'DiscourseConnectRateLimitOptions',
  'DiscourseConnectRouteName',
  'DiscourseConnectRoutePaths',
  'DiscourseConnectRedisOptions',
  'DiscourseConnectSessionOptions',
  'DiscourseConnectSessionStore',
  'DiscourseConnectSyncJobKind',
  'DiscourseConnectSyncOptions',
  'DiscourseConnectSyncQueueCounts',
  'DiscourseConnectUser',
  'DiscourseConnectUserData',
  'DiscourseForumOptions',
  'DiscourseLifecycleOptions',
  'DiscourseUser',
  'ForumUserChangedEvent',
  'GroupsContext',
  'ProfileChangedEvent',
  'SignedInEvent',
  'SignedOutEvent',
  'SignedPayload',
  'SsoPayloadContext',
  'StaffChangedEvent',
  'SyncJobEvent',
  'UserCreatedEvent',
  'DiscourseConnectVanillaOptions',
  'JsConnectAlgorithm',
  'JsConnectClient',
  'JsConnectErrorCode',
  'JsConnectRequest',
  'VanillaForumOptions',
  'VanillaJsConnectAlgorithm',
  'VanillaSignedInEvent',
  'VanillaUser',
  'VanillaUserContext',
  'DiscourseConnectLifecycleOptions',
  'DiscourseForgetAction',
  'DiscourseLifecycleResult',
  'ForgetDiscourseMemberOptions',
  'ForumUserLifecycleEvent',
  'MemberForgetReport',
  'MemberForgottenEvent',
  'MemberSuspensionOutcome',
];

const SOURCE = readFileSync(join(__dirname, 'index.ts'), 'utf8');

/** Every `export { … } from` / `export type { … } from` statement of index.ts, with its names. */
function exportStatements(): { text: string; names: string[]; typeOnly: boolean }[] {
  return [...SOURCE.matchAll(/^export (type )?\{([^}]*)\} from '[^']+';/gm)].map((m) => ({
    text: m[0],
    typeOnly: Boolean(m[1]),
    names: m[2]
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) => ({ spec: s.replace(/^type /, ''), type: s.startsWith('type ') }))
      .map(({ spec, type }) =>
        type ? `type:${spec.split(/\s+as\s+/).pop()}` : spec.split(/\s+as\s+/).pop()!,
      ),
  }));
}

describe('public API (index.ts)', () => {
  it('exports exactly the pinned values', () => {
    expect(Object.keys(api).sort()).toEqual([...VALUES].sort());
  });

  it('exports exactly the pinned names, types included, each named once', () => {
    const names = exportStatements().flatMap((s) =>
      s.names.map((n) => (s.typeOnly || n.startsWith('type:') ? n.replace(/^type:/, '') : n)),
    );
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual([...VALUES, ...TYPES].sort());
  });

  it('has no export * and a TSDoc line above every export statement', () => {
    expect(SOURCE).not.toMatch(/^export \*/m);
    const lines = SOURCE.split('\n');
    lines.forEach((line, i) => {
      if (!line.startsWith('export ')) return;
      expect({ line, doc: lines[i - 1].trim() }).toEqual({
        line,
        doc: expect.stringMatching(/^\/\*\*.*\*\/$|^\*\/$/),
      });
    });
  });
});
