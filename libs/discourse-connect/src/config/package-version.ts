import { readFileSync } from 'node:fs';
import { join } from 'node:path';

let version: string | undefined;

/**
 * The version in this package's own package.json, read when first asked. The file sits two levels
 * up both from the source (`src/config/`) and from the build (`dist/config/`), and npm always packs it.
 */
export function packageVersion(): string {
  version ??= (
    JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  return version;
}
