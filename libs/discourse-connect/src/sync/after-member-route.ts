import type { CallHandler, ExecutionContext } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
import { mergeMap, Observable } from 'rxjs';
import { DISCORD_ID } from '../config/discourse-connect.schema';
import type { LocalUser } from '../users/local-user.interface';

/** How a member-route decorator names its member. Default: the signed-in member (`req.user`). */
export interface MemberOfRoute {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the host's request on either adapter: its reader knows the shape
  user?: (request: any) => string | undefined | null;
}

/** The member's Discord id: from the decorator's reader, else `req.user`; only a Discord snowflake. */
export function memberOfRoute(meta: MemberOfRoute, req: { user?: LocalUser }): string | undefined {
  const id = meta.user ? meta.user(req) : req.user?.discordId;
  return typeof id === 'string' && DISCORD_ID.test(id) ? id : undefined;
}

/**
 * Runs `act` for the route's member after the handler succeeds, when the handler (or its class)
 * carries `key` metadata. The member is read before the handler runs (a handler that signs the
 * member out removes `req.user`), else after it. The route's own answer stands.
 */
export function afterMemberRoute<M extends MemberOfRoute>(
  reflector: Reflector,
  key: string,
  context: ExecutionContext,
  next: CallHandler,
  discordIdOf: (meta: M, req: { user?: LocalUser }) => string | undefined,
  act: (meta: M, discordId: string) => Promise<void>,
): Observable<unknown> {
  const meta = reflector.getAllAndOverride<M | undefined>(key, [
    context.getHandler(),
    context.getClass(),
  ]);
  if (!meta) return next.handle();
  const req = context.switchToHttp().getRequest<{ user?: LocalUser }>();
  const before = discordIdOf(meta, req);
  return next.handle().pipe(
    mergeMap(async (result) => {
      const discordId = before ?? discordIdOf(meta, req);
      if (discordId) await act(meta, discordId);
      return result;
    }),
  );
}
