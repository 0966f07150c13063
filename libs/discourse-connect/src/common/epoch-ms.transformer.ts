import type { ValueTransformer } from 'typeorm';

/**
 * Epoch milliseconds in a `bigint` column: PostgreSQL returns bigints as strings, SQLite as numbers;
 * both come back as a number (null stays null).
 */
export const epochMsTransformer: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | number | null) =>
    value === null || value === undefined ? null : Number(value),
};
