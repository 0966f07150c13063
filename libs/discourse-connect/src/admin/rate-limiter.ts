/**
 * Spaces calls to the forum's admin API so they never exceed `perMinute`, and pauses every caller
 * when the forum answers 429. Discourse has ONE admin API budget per site, shared by all keys: each
 * forum has its own limiter ({@link forForum}), at its own rate (`forumRates`, else `perMinute`).
 */
export class AdminApiRateLimiter {
  private nextSlot = 0;
  private pausedUntil = 0;
  private readonly forums = new Map<string, AdminApiRateLimiter>();

  constructor(
    private perMinute: number,
    protected readonly forumRates: Readonly<Record<string, number>> = {},
  ) {
    if (!(perMinute > 0))
      throw new Error('the admin API rate must be a positive number of requests per minute');
  }

  get ratePerMinute(): number {
    return this.perMinute;
  }

  /** The limiter of the forum with this name: its own budget, and its own 429 pause. */
  forForum(name: string): AdminApiRateLimiter {
    let limiter = this.forums.get(name);
    if (!limiter) {
      limiter = this.createForForum(name, this.forumRates[name] ?? this.perMinute);
      this.forums.set(name, limiter);
    }
    return limiter;
  }

  protected createForForum(_name: string, perMinute: number): AdminApiRateLimiter {
    return new AdminApiRateLimiter(perMinute);
  }

  /** Waits for the next free slot. */
  async acquire(): Promise<void> {
    const interval = 60_000 / this.perMinute;
    const now = Date.now();
    const at = Math.max(now, this.nextSlot, this.pausedUntil);
    this.nextSlot = at + interval;
    if (at > now) await sleep(at - now);
  }

  /** Stops all calls for `seconds` (the forum's 429 wait). */
  pause(seconds: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + seconds * 1000);
  }

  /** Milliseconds until calls may resume after a 429, or 0. */
  pausedFor(): number {
    return Math.max(0, this.pausedUntil - Date.now());
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
