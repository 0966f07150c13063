import { DiscourseConnectConfigurationError } from './configuration.error';

/**
 * Loads a package that only some hosts need (optional peer dependencies of the module: `ioredis`
 * and `bullmq` for Redis, `@fastify/cookie` and `@fastify/session` on Fastify), at the moment the
 * feature that needs it starts. When it is not installed, the error names the package and the
 * command that installs it, instead of a bare "Cannot find module".
 */
export function loadOptionalDependency<T>(name: string, neededFor: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on use: the package is an optional peer
    return require(name) as T;
  } catch (error) {
    const code = (error as { code?: string }).code;
    const message = (error as Error).message ?? '';
    if (code === 'MODULE_NOT_FOUND' && message.includes(`'${name}'`)) {
      throw new DiscourseConnectConfigurationError(
        `${neededFor} needs the package "${name}", which is not installed. Install it in your app: npm install ${name}`,
      );
    }
    throw error;
  }
}
