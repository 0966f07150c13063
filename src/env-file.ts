import { existsSync, readFileSync } from 'node:fs';
import { findCutEnvValues } from 'nestjs-discourse-connect';

/**
 * Loads `.env` when present (real environment variables win), after checking it for secrets a
 * `.env` parser would cut at `#`. Exits with a message saying how to fix the file.
 */
export function loadEnvFile(path = '.env'): void {
  if (!existsSync(path)) return;
  const problems = findCutEnvValues(readFileSync(path, 'utf8'));
  if (problems.length) {
    console.error(
      `\nInvalid configuration in ${path}:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`,
    );
    process.exit(1);
  }
  process.loadEnvFile(path);
}
