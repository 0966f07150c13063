import type { DataSource } from 'typeorm';
import { migratedSqlite } from '../../test-support/fixtures';
import { DiscourseConnectForumLinkEntity } from './forum-link.entity';
import { ForumLinks } from './forum-links';

describe('ForumLinks (real SQLite)', () => {
  let dataSource: DataSource;
  let links: ForumLinks;

  beforeEach(async () => {
    dataSource = await migratedSqlite();
    links = new ForumLinks(dataSource.getRepository(DiscourseConnectForumLinkEntity));
  });

  afterEach(() => dataSource.destroy());

  it("records a handshake's link once per member and forum, not on every handshake", async () => {
    const record = jest.spyOn(links, 'record');
    const t0 = 1_800_000_000_000;
    await links.recordHandshake('forum', '80351110224678912', t0);
    await links.recordHandshake('forum', '80351110224678912', t0 + 60_000);
    await links.recordHandshake('other', '80351110224678912', t0 + 60_000);
    expect(record).toHaveBeenCalledTimes(2);
    expect(await links.find('forum', '80351110224678912')).toMatchObject({
      status: 'linked',
      checkedAt: t0,
    });
    // After ten minutes a handshake writes it again.
    await links.recordHandshake('forum', '80351110224678912', t0 + 11 * 60_000);
    expect(record).toHaveBeenCalledTimes(3);
  });

  it('a later "not found" is not hidden by an earlier handshake: the next handshake writes again', async () => {
    const t0 = 1_800_000_000_000;
    await links.recordHandshake('forum', '80351110224678912', t0);
    await links.record('forum', '80351110224678912', { status: 'not_found' }, { now: t0 + 1000 });
    await links.recordHandshake('forum', '80351110224678912', t0 + 2000);
    expect(await links.find('forum', '80351110224678912')).toMatchObject({
      status: 'linked',
      checkedAt: t0 + 2000,
    });
  });

  it('a lookup\'s late "not found" does not overwrite a link a handshake recorded meanwhile', async () => {
    const t0 = 1_800_000_000_000;
    // The lookup is asked at t0; a handshake completes at t0 + 1 s; the lookup answers at t0 + 2 s.
    await links.recordHandshake('forum', '80351110224678912', t0 + 1000);
    await links.record(
      'forum',
      '80351110224678912',
      { status: 'not_found' },
      { now: t0 + 2000, askedAt: t0 },
    );
    expect(await links.find('forum', '80351110224678912')).toMatchObject({ status: 'linked' });
    // Nothing recorded before: the answer is kept; an older record is replaced.
    await links.record('forum', '1', { status: 'not_found' }, { now: t0 + 2000, askedAt: t0 });
    expect(await links.find('forum', '1')).toMatchObject({
      status: 'not_found',
      checkedAt: t0 + 2000,
    });
    await links.record(
      'forum',
      '1',
      { status: 'not_found' },
      { now: t0 + 5000, askedAt: t0 + 4000 },
    );
    expect(await links.find('forum', '1')).toMatchObject({ checkedAt: t0 + 5000 });
  });
});

describe('ForumLinks: the staff flags granted (real SQLite)', () => {
  let dataSource: DataSource;
  let links: ForumLinks;
  const id = '80351110224678912';

  beforeEach(async () => {
    dataSource = await migratedSqlite();
    links = new ForumLinks(dataSource.getRepository(DiscourseConnectForumLinkEntity));
  });
  afterEach(() => dataSource.destroy());

  it('a later link answer keeps the grants; "no account there" clears them', async () => {
    expect(await links.changeStaffGrant('forum', id, 'moderator', true)).toBe(true);
    await links.record('forum', id, { status: 'linked', account: { id: 3, username: 'nelly' } });
    await links.recordHandshake('forum', id);
    expect(await links.staffGrants('forum', id)).toEqual({ admin: false, moderator: true });
    await links.record('forum', id, { status: 'not_found' });
    expect(await links.staffGrants('forum', id)).toEqual({ admin: false, moderator: false });

    await links.changeStaffGrant('forum', id, 'admin', true);
    await links.record('forum', id, { status: 'not_found' }, { askedAt: Date.now() + 1000 });
    expect(await links.staffGrants('forum', id)).toEqual({ admin: false, moderator: false });
  });
});

describe('ForumLinks: suspensions (real SQLite)', () => {
  let dataSource: DataSource;
  let links: ForumLinks;
  const id = '80351110224678912';
  const until = 1_900_000_000_000;

  beforeEach(async () => {
    dataSource = await migratedSqlite();
    links = new ForumLinks(dataSource.getRepository(DiscourseConnectForumLinkEntity));
    await links.record('forum', id, { status: 'linked', account: { id: 3, username: 'nelly' } });
    await links.recordSuspension('forum', id, { until, byModule: true });
  });
  afterEach(() => dataSource.destroy());

  it("the forum confirming the module's end date (within a minute) keeps it the module's", async () => {
    await links.recordSuspension('forum', id, { until: until + 30_000 });
    expect(await links.find('forum', id)).toMatchObject({
      suspendedUntil: until + 30_000,
      suspendedByModule: true,
    });
  });

  it("another end date is the forum staff's suspension: no longer the module's to lift", async () => {
    await links.recordSuspension('forum', id, { until: until + 7 * 24 * 60 * 60 * 1000 });
    expect(await links.find('forum', id)).toMatchObject({
      suspendedUntil: until + 7 * 24 * 60 * 60 * 1000,
      suspendedByModule: false,
    });
    // Even if the staff later set the module's old date again, the mark stays off.
    await links.recordSuspension('forum', id, { until });
    expect(await links.find('forum', id)).toMatchObject({ suspendedByModule: false });
  });

  it("a lifted suspension is nobody's", async () => {
    await links.recordSuspension('forum', id, { until: null });
    expect(await links.find('forum', id)).toMatchObject({
      suspendedUntil: null,
      suspendedByModule: false,
    });
  });
});
