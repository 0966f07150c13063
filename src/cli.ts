import 'reflect-metadata';
import { CommandFactory } from 'nest-commander';
import { discourseConnectOptionsFromEnv } from 'nestjs-discourse-connect';
import { loadEnvFile } from './env-file';
import { sandboxEnv } from './sandbox';

/** `npm run cli -- <command>`: sync, logout, suspend, unsuspend, forget, check, failed. `--help` lists them. */
async function main(): Promise<void> {
  loadEnvFile();
  if (!process.env.DISCORD_CLIENT_ID) {
    // No credentials: talk to the sandbox that `npm start` runs on PORT (default 3000).
    Object.assign(process.env, sandboxEnv(Number(process.env.PORT) || 3000));
    console.error('(sandbox mode: using the simulated forum of `npm start`)');
  }
  try {
    // Checked here, before Nest boots, so a mistake prints one message and no stack trace.
    discourseConnectOptionsFromEnv(process.env);
  } catch (error) {
    console.error(`\n${(error as Error).message}\n`);
    process.exit(1);
  }
  // Loaded after the environment is settled: the module reads it when it is imported.
  const { CliModule } = await import('./cli/cli.module.js');
  try {
    await CommandFactory.run(CliModule, {
      logger: ['error', 'warn'],
      errorHandler: (error) => {
        const code = (error as Error & { code?: string }).code ?? '';
        if (
          code === 'commander.helpDisplayed' ||
          code === 'commander.help' ||
          code === 'commander.version'
        ) {
          process.exit(0);
        }
        console.error(`\n${error.message}\n`);
        process.exit(1);
      },
      serviceErrorHandler: (error) => {
        console.error(`\n${error.message}\n`);
        process.exit(1);
      },
    });
  } catch (error) {
    console.error(`\n${(error as Error).message}\n`);
    process.exit(1);
  }
}

void main();
