'use strict';
/**
 * Seeds local members straight into the module's users table of a migrated SQLite file, for the
 * tests and the bench that need thousands of signed-up members without signing each one in. A test
 * helper of this repository (plain JavaScript, so the bench can load it without a compiler): the
 * simulators share nothing with the library, so this does not live there.
 */
const Database = require('better-sqlite3');

/** The Discord id of the n-th seeded user (n ≥ 1): a canonical 18-digit snowflake. */
function seededDiscordId(n) {
  return `3${String(n).padStart(17, '0')}`;
}

/**
 * Writes the users in one transaction. User `i` (from 0) is `Member i`,
 * `member<i>_<last 4 digits>@example.com`, verified. With `options.linkForum` (a forum's name), each
 * user is also recorded as having an account on that forum, so syncs reach them there. With
 * `options.roles`, every user's stored roles in the Discord server are those (as a sign-in stores them).
 */
function seedLocalUsers(databaseFile, ids, options = {}) {
  const db = new Database(databaseFile);
  try {
    const insert = db.prepare(
      `INSERT INTO discourse_connect_users
         (discord_id, username, display_name, email, email_verified, avatar_hash, metadata, metadata_hash, created_at, updated_at)
       VALUES (?, ?, ?, ?, 1, NULL, ?, ?, ?, ?)`,
    );
    const link = options.linkForum
      ? db.prepare(
          `INSERT INTO discourse_connect_forum_links (forum, discord_id, forum_user_id, forum_username, status, checked_at)
           VALUES (?, ?, NULL, NULL, 'linked', ?)`,
        )
      : null;
    const checkedAt = Date.now();
    const now = new Date().toISOString().replace('T', ' ').replace('Z', '');
    db.transaction(() => {
      ids.forEach((id, i) => {
        const username = `member${i}_${id.slice(-4)}`;
        const email = `${username}@example.com`;
        const metadata = {
          id,
          username,
          global_name: `Member ${i}`,
          discriminator: '0',
          avatar: null,
          email,
          verified: true,
          locale: 'en-US',
          ...(options.roles ? { roles: [...options.roles].sort() } : {}),
        };
        insert.run(
          id,
          username,
          `Member ${i}`,
          email,
          JSON.stringify(metadata),
          'ab'.repeat(32),
          now,
          now,
        );
        link?.run(options.linkForum, id, checkedAt);
      });
    })();
  } finally {
    db.close();
  }
}

module.exports = { seededDiscordId, seedLocalUsers };
