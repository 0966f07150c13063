import { SetMetadata } from '@nestjs/common';
import type { DiscourseConnectFilterName } from './filters.interface';

export const DISCOURSE_CONNECT_FILTER = 'discourse-connect:filter';

export interface FilterRegistration {
  name: DiscourseConnectFilterName;
  /** Lower runs first, as in WordPress. Default 10. */
  priority: number;
}

/**
 * Marks a provider method as a filter. The method gets `(value, context)` and returns the new value.
 * Filters of one name run in ascending priority; equal priorities run in registration order.
 * Register the class as a plain provider of any module.
 *
 * @example
 * ＠Injectable()
 * export class ForumPlugin {
 *   ＠DiscourseConnectFilter('sso.payload', { priority: 20 })
 *   addTitle(payload: DiscourseConnectPayload, { user }: SsoPayloadContext) {
 *     return { ...payload, title: user.emailVerified ? 'Member' : null };
 *   }
 * }
 */
export const DiscourseConnectFilter = (
  name: DiscourseConnectFilterName,
  options: { priority?: number } = {},
): MethodDecorator =>
  SetMetadata<string, FilterRegistration>(DISCOURSE_CONNECT_FILTER, {
    name,
    priority: options.priority ?? 10,
  });
