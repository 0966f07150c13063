import { AdminApiRateLimiter } from './rate-limiter';

describe('AdminApiRateLimiter per forum', () => {
  it("gives each forum its own limiter at its own rate, the global one's by default", () => {
    const limiter = new AdminApiRateLimiter(60, { alpha: 240 });
    expect(limiter.forForum('alpha').ratePerMinute).toBe(240);
    expect(limiter.forForum('bravo').ratePerMinute).toBe(60);
    expect(limiter.forForum('alpha')).toBe(limiter.forForum('alpha'));
    limiter.forForum('alpha').pause(30);
    expect(limiter.forForum('alpha').pausedFor()).toBeGreaterThan(0);
    expect(limiter.forForum('bravo').pausedFor()).toBe(0);
  });
});
