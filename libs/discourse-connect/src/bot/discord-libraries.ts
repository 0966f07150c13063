import { loadOptionalDependency } from '../config/optional-dependency';

/** `@discordjs/rest`, loaded when the bot connection starts (an optional peer of the module). */
export function loadDiscordRest(): typeof import('@discordjs/rest') {
  return loadOptionalDependency<typeof import('@discordjs/rest')>(
    '@discordjs/rest',
    'The Discord bot connection (the bot option or DISCORD_BOT_TOKEN)',
  );
}

/** `@discordjs/ws`, loaded when the gateway connection opens (an optional peer of the module). */
export function loadDiscordWs(): typeof import('@discordjs/ws') {
  return loadOptionalDependency<typeof import('@discordjs/ws')>(
    '@discordjs/ws',
    'The Discord bot connection (the bot option or DISCORD_BOT_TOKEN)',
  );
}
