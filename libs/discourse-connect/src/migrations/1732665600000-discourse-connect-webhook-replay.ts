import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/**
 * Webhook replay guard resting on what is signed: processed bodies by SHA-256 (pruned by age), and
 * the newest state applied per forum user (ordering). Portable across SQLite and PostgreSQL.
 */
export class DiscourseConnectWebhookReplay1732665600000 implements MigrationInterface {
  name = 'DiscourseConnectWebhookReplay1732665600000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'discourse_connect_webhook_bodies',
        columns: [
          { name: 'forum', type: 'varchar', length: '128', isPrimary: true },
          { name: 'body_sha256', type: 'varchar', length: '64', isPrimary: true },
          { name: 'received_at', type: 'bigint' },
        ],
      }),
      true,
    );
    await queryRunner.createIndex(
      'discourse_connect_webhook_bodies',
      new TableIndex({
        name: 'IDX_discourse_connect_webhook_bodies_received_at',
        columnNames: ['received_at'],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'discourse_connect_webhook_users',
        columns: [
          { name: 'forum', type: 'varchar', length: '128', isPrimary: true },
          { name: 'forum_user_id', type: 'integer', isPrimary: true },
          { name: 'version', type: 'bigint', isNullable: true },
          { name: 'applied_at', type: 'bigint' },
        ],
      }),
      true,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('discourse_connect_webhook_users', true);
    await queryRunner.dropTable('discourse_connect_webhook_bodies', true);
  }
}
