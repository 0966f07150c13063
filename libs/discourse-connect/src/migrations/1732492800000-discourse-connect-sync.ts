import { MigrationInterface, QueryRunner, Table, TableColumn, TableIndex } from 'typeorm';

/** The durable sync queue, processed webhook deliveries, and the forum account of each user. */
export class DiscourseConnectSync1732492800000 implements MigrationInterface {
  name = 'DiscourseConnectSync1732492800000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'discourse_connect_sync_jobs',
        columns: [
          {
            name: 'id',
            type: 'integer',
            isPrimary: true,
            isGenerated: true,
            generationStrategy: 'increment',
          },
          { name: 'discord_id', type: 'varchar', length: '20' },
          { name: 'forum', type: 'varchar', length: '128' },
          { name: 'kind', type: 'varchar', length: '16' },
          { name: 'status', type: 'varchar', length: '16' },
          { name: 'dedupe_key', type: 'varchar', length: '200', isNullable: true },
          { name: 'attempts', type: 'integer', default: 0 },
          { name: 'run_at', type: 'bigint' },
          { name: 'locked_until', type: 'bigint', isNullable: true },
          { name: 'last_error', type: 'varchar', length: '500', isNullable: true },
          { name: 'created_at', type: 'timestamp', default: 'CURRENT_TIMESTAMP' },
          { name: 'updated_at', type: 'timestamp', default: 'CURRENT_TIMESTAMP' },
        ],
      }),
      true,
    );
    await queryRunner.createIndex(
      'discourse_connect_sync_jobs',
      new TableIndex({
        name: 'UQ_discourse_connect_sync_jobs_dedupe_key',
        columnNames: ['dedupe_key'],
        isUnique: true,
      }),
    );
    await queryRunner.createIndex(
      'discourse_connect_sync_jobs',
      new TableIndex({
        name: 'IDX_discourse_connect_sync_jobs_status_run_at',
        columnNames: ['status', 'run_at'],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'discourse_connect_webhook_events',
        columns: [
          {
            name: 'id',
            type: 'integer',
            isPrimary: true,
            isGenerated: true,
            generationStrategy: 'increment',
          },
          { name: 'forum', type: 'varchar', length: '128' },
          { name: 'event_id', type: 'varchar', length: '64' },
          { name: 'event', type: 'varchar', length: '64' },
          { name: 'received_at', type: 'bigint' },
        ],
      }),
      true,
    );
    await queryRunner.createIndex(
      'discourse_connect_webhook_events',
      new TableIndex({
        name: 'UQ_discourse_connect_webhook_events_forum_event',
        columnNames: ['forum', 'event_id'],
        isUnique: true,
      }),
    );
    await queryRunner.addColumns('discourse_connect_users', [
      new TableColumn({ name: 'forum_user_id', type: 'integer', isNullable: true }),
      new TableColumn({ name: 'forum_username', type: 'varchar', length: '64', isNullable: true }),
    ]);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumns('discourse_connect_users', ['forum_user_id', 'forum_username']);
    await queryRunner.dropTable('discourse_connect_webhook_events', true);
    await queryRunner.dropTable('discourse_connect_sync_jobs', true);
  }
}
