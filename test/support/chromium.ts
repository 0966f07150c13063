import { chromium, type Browser } from 'playwright-core';
import { findChromium, installCommand, packagesRequired } from '../setup/system-packages';

/**
 * The browser tests' Chromium: Debian's package (never a downloaded build), started headless with
 * the flags this closed network needs. When it is missing, `npm test`'s first step has said so and
 * how to install it; the browser suites are then skipped, unless CI or REQUIRE_SERVICES=1 asks for
 * every suite, where they fail.
 */
const CHROMIUM = findChromium();

/** `describe` when Chromium is installed (or required, to fail loudly), `describe.skip` otherwise. */
export const describeWithChromium: jest.Describe = (
  CHROMIUM || packagesRequired() ? describe : describe.skip
) as jest.Describe;

export async function launchChromium(): Promise<Browser> {
  if (!CHROMIUM) {
    throw new Error(
      `Chromium is not installed; the browser tests need it. Install it with: ${installCommand(['chromium'])}`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}
