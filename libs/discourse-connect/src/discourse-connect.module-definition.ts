import { ConfigurableModuleBuilder } from '@nestjs/common';
import type {
  DiscourseConnectDatabaseOptions,
  DiscourseConnectModuleOptions,
} from './discourse-connect-options.interface';

/**
 * Options given next to the module options, known when the module is defined (so also with
 * `forRootAsync`): `isGlobal`, and `database` for a module that keeps its own DataSource.
 */
export interface DiscourseConnectModuleExtras {
  /** Register the module globally. Default false. */
  isGlobal?: boolean;
  /** The module's own database, for a host without a TypeORM connection of its own. Default: the host's. */
  database?: DiscourseConnectDatabaseOptions;
}

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: DISCOURSE_CONNECT_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<DiscourseConnectModuleOptions>({ moduleName: 'DiscourseConnect' })
  .setClassMethodName('forRoot')
  .setExtras<DiscourseConnectModuleExtras>(
    { isGlobal: false, database: undefined },
    (definition, extras) => ({
      ...definition,
      global: extras.isGlobal,
    }),
  )
  .build();
