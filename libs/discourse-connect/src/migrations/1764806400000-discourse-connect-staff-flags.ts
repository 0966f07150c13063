import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * Staff flags by policy: which staff flags the module granted per member and forum (so it takes
 * back only its own), and whether each member's Discord account has two-factor authentication on
 * (outside the metadata, so adding it marks no member as changed). Portable across SQLite and
 * PostgreSQL.
 */
export class DiscourseConnectStaffFlags1764806400000 implements MigrationInterface {
  name = 'DiscourseConnectStaffFlags1764806400000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumns('discourse_connect_forum_links', [
      new TableColumn({ name: 'admin_granted', type: 'boolean', default: false }),
      new TableColumn({ name: 'moderator_granted', type: 'boolean', default: false }),
    ]);
    await queryRunner.addColumn(
      'discourse_connect_users',
      new TableColumn({ name: 'mfa_enabled', type: 'boolean', isNullable: true }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumn('discourse_connect_users', 'mfa_enabled');
    await queryRunner.dropColumn('discourse_connect_forum_links', 'moderator_granted');
    await queryRunner.dropColumn('discourse_connect_forum_links', 'admin_granted');
  }
}
