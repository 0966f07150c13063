import Database from 'better-sqlite3';

/** The Discord id of the n-th seeded user (n ≥ 1): a canonical 18-digit snowflake. */
export function seededDiscordId(n: number): string {
  return `3${String(n).padStart(17, '0')}`;
}

/**
 * Writes local users straight into the module's users table of a migrated SQLite file, in one
 * transaction — for tests and the bench that need thousands of signed-up members without signing
 * each one in. User `i` (from 0) is `Member i`, `member<i>_<last 4 digits>@example.com`, verified.
 */
export function seedLocalUsers(databaseFile: string, ids: readonly string[]): void {
  const db = new Database(databaseFile);
  try {
    const insert = db.prepare(
      `INSERT INTO discourse_connect_users
         (discord_id, username, display_name, email, email_verified, avatar_hash, metadata, metadata_hash, created_at, updated_at)
       VALUES (?, ?, ?, ?, 1, NULL, ?, ?, ?, ?)`,
    );
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
      });
    })();
  } finally {
    db.close();
  }
}
