import { DiscourseConnectInitial1732406400000 } from './1732406400000-discourse-connect-initial';
import { DiscourseConnectSync1732492800000 } from './1732492800000-discourse-connect-sync';
import { DiscourseConnectWebhookReplay1732665600000 } from './1732665600000-discourse-connect-webhook-replay';
import { DiscourseConnectForumLinks1733011200000 } from './1733011200000-discourse-connect-forum-links';
import { DiscourseConnectMemberLifecycle1764720000000 } from './1764720000000-discourse-connect-member-lifecycle';
import { DiscourseConnectStaffFlags1764806400000 } from './1764806400000-discourse-connect-staff-flags';

/** The module's migrations, in order: add them to the host's DataSource `migrations`. */
export const DISCOURSE_CONNECT_MIGRATIONS = [
  DiscourseConnectInitial1732406400000,
  DiscourseConnectSync1732492800000,
  DiscourseConnectWebhookReplay1732665600000,
  DiscourseConnectForumLinks1733011200000,
  DiscourseConnectMemberLifecycle1764720000000,
  DiscourseConnectStaffFlags1764806400000,
];
