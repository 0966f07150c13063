import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplication } from '@nestjs/common';
import { discourseConnectOptionsFromEnv } from 'nestjs-discourse-connect';
import { AppModule } from './app.module';
import { createHttpAdapter, httpAdapterFromEnv } from './http-adapter';
import { createJsonLogger, JsonLogger } from './logging';
import { loadEnvFile } from './env-file';
import { startSandbox, type Sandbox } from './sandbox';

/**
 * `npm start`: with Discord credentials in the environment (or .env) the app runs for real;
 * without them it starts the sandbox, with simulated Discord and Discourse in this process.
 */
async function main(): Promise<void> {
  loadEnvFile();
  const port = parsePort(process.env.PORT);
  const adapterName = parseAdapter(process.env.HTTP_ADAPTER);
  const logger = new Logger('Main');

  let sandbox: Sandbox | undefined;
  if (!process.env.DISCORD_CLIENT_ID) {
    sandbox = await startSandbox(port);
    Object.assign(process.env, sandbox.env);
  }

  let app: INestApplication;
  try {
    // Checked before Nest boots, so a mistake prints one message naming the variable, no stack trace.
    discourseConnectOptionsFromEnv(process.env);
    // JSON lines on stdout, with a request id, secrets redacted (see src/logging.ts).
    const log = createJsonLogger();
    // One trusted hop with TRUST_PROXY=true: the client's address (rate limit, logs) is then the one
    // the proxy put in X-Forwarded-For, not the proxy's. Both adapters get the same time limits
    // (HTTP_TIMEOUTS: 30 s per request, so a trickled body cannot hold a connection) and no X-Powered-By.
    const adapter = createHttpAdapter(adapterName, {
      trustProxy: process.env.TRUST_PROXY === 'true',
    });
    app = await NestFactory.create(
      AppModule.forRoot({ databaseUrl: process.env.DATABASE_URL, log }),
      adapter,
      {
        logger: new JsonLogger(log),
        abortOnError: false,
        rawBody: true, // webhook signatures cover the exact body
      },
    );
  } catch (error) {
    // A configuration mistake: say which variable and how to fix it, with no stack trace.
    console.error(`\n${(error as Error).message}\n`);
    await sandbox?.close();
    process.exit(1);
  }
  app.enableShutdownHooks();
  if (sandbox) await app.listen(port, '127.0.0.1');
  else await app.listen(port);

  if (sandbox) {
    logger.log({
      msg: 'Sandbox mode: no Discord credentials are set, so Discord and Discourse are simulated here.',
      adapter: adapterName,
    });
    console.log(`\n  Open ${sandbox.env.PUBLIC_URL}/ in your browser.\n`);
  } else {
    logger.log({
      msg: `Listening on port ${port}; public URL ${process.env.PUBLIC_URL}`,
      adapter: adapterName,
    });
  }
  const stop = async () => {
    await app.close();
    await sandbox?.close();
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

function parseAdapter(value: string | undefined) {
  try {
    return httpAdapterFromEnv(value);
  } catch (error) {
    console.error(`\n${(error as Error).message}\n`);
    process.exit(1);
  }
}

function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return 3000;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(
      `\nInvalid configuration: PORT must be a number between 1 and 65535 (got "${value}").\n`,
    );
    process.exit(1);
  }
  return port;
}

void main();
