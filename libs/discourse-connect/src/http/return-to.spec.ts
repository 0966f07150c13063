import { ReturnTo } from './return-to';

const request = () => ({
  session: { destroy: () => undefined } as Record<string, unknown> & { destroy(): void },
});

describe('ReturnTo', () => {
  it('remembers a path on this site and hands it out once', () => {
    const req = request();
    ReturnTo.remember(req, '/discourse/sso?sso=a&sig=b');
    expect(ReturnTo.take(req)).toBe('/discourse/sso?sso=a&sig=b');
    expect(ReturnTo.take(req)).toBeUndefined();
  });

  it('never keeps another site or a protocol-relative address', () => {
    const req = request();
    ReturnTo.remember(req, '/account');
    ReturnTo.remember(req, '//evil.example/');
    expect(ReturnTo.take(req)).toBeUndefined();
    ReturnTo.remember(req, 'https://evil.example/');
    expect(ReturnTo.take(req)).toBeUndefined();
  });

  it('keeps the target across a log-in that replaces the session', () => {
    const req = request();
    ReturnTo.remember(req, '/account');
    ReturnTo.keepAcrossLogIn(req);
    req.session = { destroy: () => undefined }; // passport regenerated the session
    expect(ReturnTo.take(req)).toBe('/account');
    expect(ReturnTo.take(req)).toBeUndefined();
  });

  it('forgets', () => {
    const req = request();
    ReturnTo.remember(req, '/account');
    ReturnTo.forget(req);
    expect(ReturnTo.take(req)).toBeUndefined();
  });
});
