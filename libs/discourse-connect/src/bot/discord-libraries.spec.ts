describe('the Discord libraries, optional peers loaded on use', () => {
  afterEach(() => jest.resetModules());

  it('loads the installed @discordjs/rest and @discordjs/ws', () => {
    const { loadDiscordRest, loadDiscordWs } =
      jest.requireActual<typeof import('./discord-libraries')>('./discord-libraries');
    expect(loadDiscordRest().REST).toBeInstanceOf(Function);
    expect(loadDiscordWs().WebSocketManager).toBeInstanceOf(Function);
  });

  it.each([
    ['@discordjs/ws', 'loadDiscordWs'],
    ['@discordjs/rest', 'loadDiscordRest'],
  ] as const)('without %s, boot names it and the command that installs it', (name, loader) => {
    jest.isolateModules(() => {
      jest.doMock(name, () => {
        throw Object.assign(new Error(`Cannot find module '${name}' from 'discord-libraries.ts'`), {
          code: 'MODULE_NOT_FOUND',
        });
      });
      // Loaded inside the isolated registry, where the package is missing.
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- the module under test, loaded after the mock
      const libraries = require('./discord-libraries') as typeof import('./discord-libraries');
      type ErrorsFile = typeof import('../config/configuration.error');
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- the error class of the same isolated registry
      const errors = require('../config/configuration.error') as ErrorsFile;
      const ConfigError = errors.DiscourseConnectConfigurationError;
      const load = () => libraries[loader]();
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(
        `The Discord bot connection (the bot option or DISCORD_BOT_TOKEN) needs the package "${name}", which is not installed. Install it in your app: npm install ${name}`,
      );
    });
  });
});
