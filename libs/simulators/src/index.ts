export {
  DISCORD_FIXTURES,
  SIM_BOT_USER_ID,
  SIM_GUILD_ID,
  SIM_GUILD_ROLES,
  type DiscordFixtureName,
  type SimDiscordUser,
} from './discord-fixtures';
export {
  DiscordSimulator,
  s256,
  type DiscordKnobs,
  type DiscordSimulatorOptions,
  type DiscordStats,
} from './discord-simulator';
export { GATEWAY_CLOSE, SimulatedGateway, type GatewayStats } from './discord-gateway';
export { SIM_GATEWAY_INTENTS, SimulatedGuild, type SimGuildRole } from './discord-guild';
export type {
  DiscordBotRoute,
  DiscordForcedRateLimit,
  DiscordRateLimitSettings,
  DiscordRouteLimit,
} from './discord-rate-limits';
export type { SimFailure } from './http-helpers';
export { SimulatedAdminApi, DISCOURSE_MESSAGES } from './discourse-admin-api';
export { ForumError, type ForumErrorKind } from './discourse-errors';
export {
  DiscourseSimulator,
  type DiscourseKnobs,
  type DiscourseSimulatorOptions,
  type DiscourseStats,
  type SimForumUser,
} from './discourse-simulator';
export {
  SimulatedWebhooks,
  type SimWebhookConfig,
  type SimWebhookDelivery,
  type SimWebhookEvent,
} from './discourse-webhooks';
export {
  DISCOURSE_CONNECT_FIELDS,
  decodeBase64,
  encodeBase64,
  parseRackQuery,
  signPayload,
  verifySignature,
} from './discourse-payload';
export {
  VanillaSimulator,
  readVanillaJwt,
  signVanillaJwt,
  type SimVanillaAlgorithm,
  type SimVanillaUser,
  type VanillaSimulatorOptions,
  type VanillaStats,
} from './vanilla-simulator';
