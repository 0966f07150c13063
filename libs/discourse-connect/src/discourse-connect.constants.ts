import { Inject } from '@nestjs/common';
import { DISCOURSE_CONNECT_OPTIONS } from './discourse-connect.module-definition';

export { DISCOURSE_CONNECT_OPTIONS };

/** Injects the module's resolved options. */
export const InjectDiscourseConnectOptions = (): ParameterDecorator =>
  Inject(DISCOURSE_CONNECT_OPTIONS);

/** Keys kept in the server-side session. */
export const SESSION_RETURN_TO = 'discourseConnectReturnTo';
