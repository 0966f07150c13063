export { DISCORD_FIXTURES, SIM_GUILD_ID, SIM_GUILD_ROLES, type DiscordFixtureName, type SimDiscordUser } from './discord-fixtures';
export {
  DiscordSimulator,
  s256,
  type DiscordKnobs,
  type DiscordSimulatorOptions,
  type DiscordStats,
  type SimFailure,
} from './discord-simulator';
export {
  DiscourseSimulator,
  type DiscourseKnobs,
  type DiscourseSimulatorOptions,
  type DiscourseStats,
  type SimForumUser,
} from './discourse-simulator';
export {
  DISCOURSE_CONNECT_FIELDS,
  decodeBase64,
  encodeBase64,
  parseRackQuery,
  signPayload,
  verifySignature,
} from './discourse-payload';
