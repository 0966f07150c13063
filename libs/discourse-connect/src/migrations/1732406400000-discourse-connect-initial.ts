import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/** Users keyed on the Discord id, and server-side sessions. Portable across SQLite and PostgreSQL. */
export class DiscourseConnectInitial1732406400000 implements MigrationInterface {
  name = 'DiscourseConnectInitial1732406400000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'discourse_connect_users',
        columns: [
          { name: 'discord_id', type: 'varchar', length: '20', isPrimary: true },
          { name: 'username', type: 'varchar', length: '64' },
          { name: 'display_name', type: 'varchar', length: '128' },
          { name: 'email', type: 'varchar', length: '320', isNullable: true },
          { name: 'email_verified', type: 'boolean', default: false },
          { name: 'avatar_hash', type: 'varchar', length: '64', isNullable: true },
          { name: 'metadata', type: 'text' },
          { name: 'metadata_hash', type: 'varchar', length: '64' },
          { name: 'created_at', type: 'timestamp', default: 'CURRENT_TIMESTAMP' },
          { name: 'updated_at', type: 'timestamp', default: 'CURRENT_TIMESTAMP' },
        ],
      }),
      true,
    );
    await queryRunner.createTable(
      new Table({
        name: 'discourse_connect_sessions',
        columns: [
          { name: 'sid', type: 'varchar', length: '128', isPrimary: true },
          { name: 'data', type: 'text' },
          { name: 'expires_at', type: 'bigint' },
        ],
      }),
      true,
    );
    await queryRunner.createIndex(
      'discourse_connect_sessions',
      new TableIndex({
        name: 'IDX_discourse_connect_sessions_expires_at',
        columnNames: ['expires_at'],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('discourse_connect_sessions', true);
    await queryRunner.dropTable('discourse_connect_users', true);
  }
}
