import { MigrationInterface, QueryRunner, Table } from 'typeorm';

/**
 * Which forums each member has an account on (`linked`, or `not_found` with the time it was
 * asked), so background syncs never create forum accounts. Starts empty: on an upgraded install the
 * first job for a member asks the forum once. Portable across SQLite and PostgreSQL.
 */
export class DiscourseConnectForumLinks1733011200000 implements MigrationInterface {
  name = 'DiscourseConnectForumLinks1733011200000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'discourse_connect_forum_links',
        columns: [
          { name: 'forum', type: 'varchar', length: '128', isPrimary: true },
          { name: 'discord_id', type: 'varchar', length: '20', isPrimary: true },
          { name: 'forum_user_id', type: 'integer', isNullable: true },
          { name: 'forum_username', type: 'varchar', length: '64', isNullable: true },
          { name: 'status', type: 'varchar', length: '16' },
          { name: 'checked_at', type: 'bigint' },
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('discourse_connect_forum_links', true);
  }
}
