/**
 * A value now, or a promise of it: what the hot path's steps answer, so that a step that has its
 * answer at once (a cache hit, a filter that returns) costs no promise and no microtask.
 */
export type MaybePromise<T> = T | PromiseLike<T>;

/** Whether a step answered with a promise (anything with a `then` method, as `await` reads it). */
export function isThenable<T>(value: MaybePromise<T>): value is PromiseLike<T> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
