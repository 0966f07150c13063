/**
 * The fields Discourse's DiscourseConnect understands, in the order it serialises them
 * (alphabetical), plus any number of `custom.<name>` fields.
 */
export const DISCOURSE_CONNECT_FIELDS = [
  'add_groups',
  'admin',
  'avatar_force_update',
  'avatar_url',
  'bio',
  'card_background_url',
  'confirmed_2fa',
  'email',
  'external_id',
  'failed',
  'groups',
  'locale',
  'locale_force_update',
  'location',
  'logout',
  'moderator',
  'name',
  'no_2fa_methods',
  'nonce',
  'prompt',
  'profile_background_url',
  'remove_groups',
  'require_2fa',
  'require_activation',
  'return_sso_url',
  'suppress_welcome_message',
  'title',
  'username',
  'website',
] as const;

export type DiscourseConnectField = (typeof DISCOURSE_CONNECT_FIELDS)[number];

/** Fields that travel as the strings `true` / `false`; anything else is "not given". */
export const BOOLEAN_FIELDS = [
  'admin',
  'avatar_force_update',
  'confirmed_2fa',
  'failed',
  'locale_force_update',
  'logout',
  'moderator',
  'no_2fa_methods',
  'require_2fa',
  'require_activation',
  'suppress_welcome_message',
] as const;

export type BooleanField = (typeof BOOLEAN_FIELDS)[number];

/** Fields that carry a list of group names, sent as ONE comma-joined string. */
export const GROUP_LIST_FIELDS = ['groups', 'add_groups', 'remove_groups'] as const;

export type GroupListField = (typeof GROUP_LIST_FIELDS)[number];

type StringField = Exclude<DiscourseConnectField, BooleanField | GroupListField>;

/**
 * A DiscourseConnect payload as this library builds it. `null`/`undefined` fields are left out;
 * `false` is kept (and `admin: false` REVOKES admin on the forum, so leave it out unless meant).
 */
export type DiscourseConnectPayload = {
  [K in StringField]?: string | null;
} & {
  [K in BooleanField]?: boolean | null;
} & {
  [K in GroupListField]?: readonly string[] | string | null;
} & {
  /** Custom user fields, sent as `custom.<name>`. */
  custom?: Record<string, string | number | boolean | null | undefined>;
};

const BOOLEAN_SET: ReadonlySet<string> = new Set(BOOLEAN_FIELDS);
const GROUP_SET: ReadonlySet<string> = new Set(GROUP_LIST_FIELDS);
const FIELD_SET: ReadonlySet<string> = new Set(DISCOURSE_CONNECT_FIELDS);

export const isBooleanField = (name: string): name is BooleanField => BOOLEAN_SET.has(name);
export const isGroupListField = (name: string): name is GroupListField => GROUP_SET.has(name);
export const isKnownField = (name: string): name is DiscourseConnectField => FIELD_SET.has(name);
