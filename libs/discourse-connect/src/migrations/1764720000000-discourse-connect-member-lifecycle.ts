import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * Member lifecycle on each forum link: whether the module made the member's suspension there (so it
 * lifts only its own), until when the account is suspended, and when the forum anonymized it.
 * Portable across SQLite and PostgreSQL.
 */
export class DiscourseConnectMemberLifecycle1764720000000 implements MigrationInterface {
  name = 'DiscourseConnectMemberLifecycle1764720000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumns('discourse_connect_forum_links', [
      new TableColumn({
        name: 'suspended_by_module',
        type: 'boolean',
        default: false,
        isNullable: false,
      }),
      new TableColumn({ name: 'suspended_until', type: 'bigint', isNullable: true }),
      new TableColumn({ name: 'anonymized_at', type: 'bigint', isNullable: true }),
    ]);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumns('discourse_connect_forum_links', [
      'anonymized_at',
      'suspended_until',
      'suspended_by_module',
    ]);
  }
}
