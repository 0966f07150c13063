import {
  applyDecorators,
  CallHandler,
  ExecutionContext,
  Injectable,
  Logger,
  NestInterceptor,
  SetMetadata,
  UseInterceptors,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Observable } from 'rxjs';
import { afterMemberRoute, memberOfRoute } from './after-member-route';
import type { LocalUser } from '../users/local-user.interface';
import type { SyncJobKind } from './sync-job.entity';
import { SyncQueue } from './sync-queue.service';

export const DISCOURSE_LIFECYCLE = 'discourse-connect:lifecycle';

/** Which user a lifecycle decorator acts on. Default: the signed-in user (`req.user`). */
export interface DiscourseLifecycleOptions {
  /** Reads the Discord id from the request, e.g. `(req) => req.params.discordId` on an admin route. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the host's request on either adapter: its reader knows the shape
  user?: (request: any) => string | undefined | null;
}

interface LifecycleMetadata extends DiscourseLifecycleOptions {
  kinds: SyncJobKind[];
}

/**
 * After the route handler succeeds, records forum work for the user in the durable sync queue.
 * A failure to record it is logged; the route's own answer stands.
 */
@Injectable()
export class DiscourseLifecycleInterceptor implements NestInterceptor {
  private readonly logger = new Logger('DiscourseConnect');

  constructor(
    protected readonly reflector: Reflector,
    protected readonly queue: SyncQueue,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return afterMemberRoute<LifecycleMetadata>(
      this.reflector,
      DISCOURSE_LIFECYCLE,
      context,
      next,
      (meta, req) => this.discordIdOf(meta, req),
      async (meta, discordId) => {
        for (const kind of meta.kinds) {
          try {
            await this.queue.enqueue(kind, discordId);
          } catch (error) {
            this.logger.error(
              `could not record ${kind} for ${discordId}: ${(error as Error).message}`,
            );
          }
        }
      },
    );
  }

  protected discordIdOf(meta: LifecycleMetadata, req: { user?: LocalUser }): string | undefined {
    return memberOfRoute(meta, req);
  }
}

/** A route decorator recording a `kind` job for the route's member once the handler succeeded. */
const lifecycleDecorator =
  (kind: SyncJobKind) =>
  (options: DiscourseLifecycleOptions = {}) =>
    applyDecorators(
      SetMetadata<string, LifecycleMetadata>(DISCOURSE_LIFECYCLE, { ...options, kinds: [kind] }),
      UseInterceptors(DiscourseLifecycleInterceptor),
    );

/**
 * After this handler succeeds, push the user's current profile (and groups) to the forum.
 *
 * @example
 * ＠Post('profile') ＠SyncToDiscourse()
 * updateProfile() { ... }
 */
export const SyncToDiscourse = lifecycleDecorator('sync');

/**
 * After this handler succeeds, log the user out of the forum.
 *
 * @example
 * ＠Post('admin/users/:discordId/ban') ＠LogOutOfDiscourse({ user: (req) => req.params.discordId })
 * ban() { ... }
 */
export const LogOutOfDiscourse = lifecycleDecorator('logout');

// Member lifecycle decorators (suspensions through the durable queue).
/**
 * After this handler succeeds, suspend the member on the forums where they have an account (a
 * `suspend` job: `lifecycle.suspendReason`, `lifecycle.suspendDays`), recorded as the module's.
 *
 * @example
 * ＠Post('admin/members/:discordId/ban') ＠SuspendOnDiscourse({ user: (req) => req.params.discordId })
 * ban() { ... }
 */
export const SuspendOnDiscourse = lifecycleDecorator('suspend');

/**
 * After this handler succeeds, lift the member's forum suspension where the module made it (an
 * `unsuspend` job); a suspension made by the forum's staff stays.
 *
 * @example
 * ＠Post('admin/members/:discordId/unban') ＠UnsuspendOnDiscourse({ user: (req) => req.params.discordId })
 * unban() { ... }
 */
export const UnsuspendOnDiscourse = lifecycleDecorator('unsuspend');
