/** Types of seed-local-users.js (plain JavaScript so that the bench can load it). */
export declare function seededDiscordId(n: number): string;
export declare function seedLocalUsers(databaseFile: string, ids: readonly string[]): void;
