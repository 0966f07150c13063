import { RedisErrorLog, REDIS_ERROR_LOG_INTERVAL_MS } from './redis-error-log';

describe('RedisErrorLog', () => {
  const lines: string[] = [];
  const logger = { error: (line: string) => void lines.push(line) };

  beforeEach(() => {
    lines.length = 0;
    jest.useFakeTimers({ now: Date.parse('2025-01-01T00:00:00Z') });
  });
  afterEach(() => jest.useRealTimers());

  it('masks credentials and the URL, logging the message only', () => {
    const url = 'redis://redis.internal:6379/0';
    new RedisErrorLog(logger, url).log('sync queue (Redis)', new Error(`connect to ${url} failed`));
    jest.advanceTimersByTime(REDIS_ERROR_LOG_INTERVAL_MS);
    const secret = 'redis://user:hunter2@redis.internal:6379/0';
    new RedisErrorLog(logger, secret).log('Redis', new Error(`connect to ${secret} failed`));
    new RedisErrorLog(logger).log('Rate limit', new Error('auth for rediss://:s3cret@host failed'));
    expect(lines).toEqual([
      'sync queue (Redis): connect to <REDIS_URL> failed',
      'Redis: connect to redis://***@redis.internal:6379/0 failed',
      'Rate limit: auth for rediss://***@host failed',
    ]);
    expect(lines.join('\n')).not.toMatch(/hunter2|s3cret/);
  });

  it('logs at most once every 30 s (per log), whatever the context', () => {
    const errors = new RedisErrorLog(logger);
    errors.log('a', new Error('one'));
    errors.log('b', new Error('two'));
    jest.advanceTimersByTime(REDIS_ERROR_LOG_INTERVAL_MS - 1);
    errors.log('a', 'three');
    jest.advanceTimersByTime(1);
    errors.log('a', 'four');
    new RedisErrorLog(logger).log('other', 'five');
    expect(lines).toEqual(['a: one', 'a: four', 'other: five']);
  });
});
