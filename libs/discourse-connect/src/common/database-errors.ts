/** Whether a TypeORM error is a unique-constraint violation (SQLite, PostgreSQL, MySQL). */
export function isUniqueViolation(error: unknown): boolean {
  const driver = (error as { driverError?: { code?: string } })?.driverError;
  const code = driver?.code ?? (error as { code?: string })?.code ?? '';
  return code === '23505' || code.startsWith('SQLITE_CONSTRAINT') || code === 'ER_DUP_ENTRY';
}
