import { Injectable } from '@nestjs/common';
import { DiscourseConnectSettings } from '../config/discourse-connect.settings';
import { httpRequest } from '../common/http-request';
import { DiscordApiError, retryAfterOf } from './discord-api.error';

/** Calls Discord's versioned API (`<DISCORD_BASE_URL>/api/v10`) with a real User-Agent and a timeout. */
@Injectable()
export class DiscordApiClient {
  constructor(private readonly settings: DiscourseConnectSettings) {}

  /**
   * GET a JSON resource with the user's bearer token.
   *
   * @throws DiscordApiError on a non-2xx answer, a timeout or an unreachable Discord.
   */
  async get<T>(path: string, accessToken: string): Promise<T> {
    const { apiUrl, userAgent, timeoutMs } = this.settings.discord;
    const response = await httpRequest(`${apiUrl}${path}`, {
      headers: {
        Authorization: `Bearer ${accessToken}`,
        'User-Agent': userAgent,
        Accept: 'application/json',
      },
      timeoutMs,
    });
    if (!response.reached) {
      throw new DiscordApiError(
        0,
        response.timedOut ? 'Discord did not answer in time' : 'Discord could not be reached',
      );
    }
    const body = response.text;
    if (!response.ok) {
      const retry = response.status === 429 ? retryAfterOf(response.headers, body) : undefined;
      throw new DiscordApiError(
        response.status,
        `Discord answered ${response.status} to GET ${path}`,
        retry,
      );
    }
    try {
      return JSON.parse(body) as T;
    } catch {
      throw new DiscordApiError(
        502,
        `Discord answered GET ${path} with something that is not JSON`,
      );
    }
  }
}
