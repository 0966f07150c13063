import type { DiscourseConnectFilterName } from './filters.interface';

/**
 * A host filter threw: the work it was part of stops (fail closed). A domain error, not a page:
 * on a request the module's HTTP layer shows the person "sign-in stopped by the site" (403); in a
 * background sync job it fails the job.
 */
export class FilterFailedError extends Error {
  override readonly name = 'FilterFailedError';
  readonly code = 'filter_failed';

  constructor(
    readonly filter: DiscourseConnectFilterName,
    options?: { cause?: unknown },
  ) {
    super(`The host filter on "${filter}" failed; nothing was changed.`, options);
  }
}
