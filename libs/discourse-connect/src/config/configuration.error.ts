/** The module was given options or environment it cannot run with; the message says how to fix it. */
export class DiscourseConnectConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DiscourseConnectConfigurationError';
  }
}
