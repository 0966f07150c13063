import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');

/**
 * `npm run build` (the library and simulators packages, then the host app into dist/), as
 * `npm start` and the CLI do first; once per test run (the marker is per Jest process), for the
 * tests that run the built app in a child process.
 */
export function buildOnce(): void {
  const marker = join(tmpdir(), `dc-test-build-${process.pid}`);
  if (existsSync(marker)) return;
  try {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'pipe' });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`npm run build failed:\n${stdout ?? ''}${stderr ?? ''}`, { cause: error });
  }
  writeFileSync(marker, '');
}
