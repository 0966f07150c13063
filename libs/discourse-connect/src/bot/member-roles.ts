/**
 * A member's roles as the module keeps them: sorted role ids, `null` when not in the server,
 * `undefined` when never read (the member signed in before roles were mapped).
 */
export type StoredRoles = string[] | null | undefined;

/** Role ids from a Discord member object, sorted and without anything that is not a role id. */
export function rolesOf(member: { roles?: unknown }): string[] {
  return Array.isArray(member.roles)
    ? [...new Set(member.roles.filter((r): r is string => typeof r === 'string'))].sort()
    : [];
}

/** Whether the stored roles already say what Discord says (`undefined` never does). */
export function sameRoles(stored: StoredRoles, current: string[] | null): boolean {
  if (stored === undefined) return false;
  if (stored === null || current === null) return stored === current;
  if (stored.length !== current.length) return false;
  const sorted = [...stored].sort();
  return current.every((role, i) => role === sorted[i]);
}

/**
 * What a change of roles means for the member: `left` the server (was a member, now is not),
 * `returned` to it (was known not to be a member, now is), or their roles were `updated`
 * (including the first time they are read).
 */
export function roleTransition(
  stored: StoredRoles,
  current: string[] | null,
): 'unchanged' | 'updated' | 'left' | 'returned' {
  if (sameRoles(stored, current)) return 'unchanged';
  if (Array.isArray(stored) && current === null) return 'left';
  if (stored === null && current !== null) return 'returned';
  return 'updated';
}

/** The larger of two snowflakes (compared as numbers: ids of different lengths sort apart as text). */
export function laterSnowflake(a: string | null, b: string): string {
  if (a === null) return b;
  return BigInt(b) > BigInt(a) ? b : a;
}
