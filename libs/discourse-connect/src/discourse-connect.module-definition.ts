import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { DiscourseConnectModuleOptions } from './discourse-connect-options.interface';

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: DISCOURSE_CONNECT_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<DiscourseConnectModuleOptions>({ moduleName: 'DiscourseConnect' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
