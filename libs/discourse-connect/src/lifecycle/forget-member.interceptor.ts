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
import { afterMemberRoute, memberOfRoute } from '../sync/after-member-route';
import type { LocalUser } from '../users/local-user.interface';
import { DiscourseMemberLifecycle } from './member-lifecycle.service';

const FORGET_MEMBER = 'discourse-connect:forget-member';

/** Which member `@ForgetDiscourseMember()` forgets. Default: the signed-in member (`req.user`). */
export interface ForgetDiscourseMemberOptions {
  /** Reads the Discord id from the request, e.g. `(req) => req.params.discordId` on an admin route. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the host's request on either adapter: its reader knows the shape
  user?: (request: any) => string | undefined | null;
}

/**
 * After the route handler succeeds, forgets the member (`DiscourseMemberLifecycle.forget`): local
 * data gone, forum accounts anonymized, deleted or left by the `lifecycle.forgetAction` option. A
 * failure is logged (a forum that failed keeps a job); the route's own answer stands.
 */
@Injectable()
export class ForgetDiscourseMemberInterceptor implements NestInterceptor {
  private readonly logger = new Logger('DiscourseConnect');

  constructor(
    protected readonly reflector: Reflector,
    protected readonly lifecycle: DiscourseMemberLifecycle,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return afterMemberRoute<ForgetDiscourseMemberOptions>(
      this.reflector,
      FORGET_MEMBER,
      context,
      next,
      (meta, req) => this.discordIdOf(meta, req),
      async (_meta, discordId) => {
        try {
          await this.lifecycle.forget(discordId);
        } catch (error) {
          this.logger.error(`could not forget ${discordId}: ${(error as Error).message}`);
        }
      },
    );
  }

  protected discordIdOf(
    meta: ForgetDiscourseMemberOptions,
    req: { user?: LocalUser },
  ): string | undefined {
    return memberOfRoute(meta, req);
  }
}

/**
 * After this handler succeeds, forget the member: their local data goes, and their forum accounts
 * are anonymized (default), deleted or left (`lifecycle.forgetAction`).
 *
 * @example
 * ＠Delete('admin/members/:discordId') ＠ForgetDiscourseMember({ user: (req) => req.params.discordId })
 * remove() { ... }
 */
export const ForgetDiscourseMember = (options: ForgetDiscourseMemberOptions = {}) =>
  applyDecorators(
    SetMetadata<string, ForgetDiscourseMemberOptions>(FORGET_MEMBER, options),
    UseInterceptors(ForgetDiscourseMemberInterceptor),
  );
