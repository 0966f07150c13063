import { BOT_FAILURE_LOG_INTERVAL_MS, FailureLog } from './failure-log';

describe('FailureLog', () => {
  it('logs a repeated failure once per 10 minutes, with the count left out, and masks the token', () => {
    let now = 0;
    const lines: string[] = [];
    const log = new FailureLog(
      { warn: (line: string) => void lines.push(line) },
      'secret-bot-token-0123456789',
      BOT_FAILURE_LOG_INTERVAL_MS,
      () => now,
    );
    log.report('gateway refused Bot secret-bot-token-0123456789');
    for (let i = 0; i < 50; i++) {
      now += 10_000;
      log.report('gateway refused');
    }
    expect(lines).toEqual(['gateway refused Bot <DISCORD_BOT_TOKEN>']);
    now = BOT_FAILURE_LOG_INTERVAL_MS;
    log.report('gateway refused');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe('gateway refused (50 more such failures since the last line)');
  });
});
