import { DataSource } from 'typeorm';
import { HTTP_ADAPTERS, startHarness, type Harness } from './support/harness';

describe.each(HTTP_ADAPTERS)('GET /health (%s)', (adapter) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('forRoot', { adapter });
  });
  afterAll(async () => {
    // The DataSource is closed by the test below; the app's shutdown must not trip over it.
    await h.close().catch(() => undefined);
  });

  it('answers 200 with the checks while the database answers', async () => {
    const res = await fetch(`${h.appUrl}/health`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as { routes: { vanilla?: unknown } };
    expect(body).toMatchObject({ status: 'ok', checks: { database: 'up' } });
    // No Vanilla forum configured: no Vanilla URLs.
    expect(body.routes.vanilla).toBeUndefined();
  });

  it('answers 503 naming the database when it is down, without a stack trace', async () => {
    await h.app.get(DataSource).destroy();
    const res = await fetch(`${h.appUrl}/health`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(503);
    const text = await res.text();
    const body = JSON.parse(text);
    expect(body).toMatchObject({ status: 'error', checks: { database: 'down' } });
    expect(body.queue).toBeUndefined();
    expect(text).not.toMatch(/at .*\.js|QueryRunner|Error:/);
  });
});
