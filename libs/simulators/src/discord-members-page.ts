import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimDiscordUser } from './discord-fixtures';
import type { SimulatedGateway } from './discord-gateway';
import { compareSnowflakes, type SimulatedGuild } from './discord-guild';
import { escapeHtml, readBody, redirect, sendHtml, sendText } from './http-helpers';

/** What the members page needs of the simulator. */
export interface MembersPageHost {
  readonly users: Map<string, SimDiscordUser>;
  readonly guild: SimulatedGuild;
  readonly gateway: SimulatedGateway;
}

/** Members shown per page (the bench's servers have thousands). */
const PAGE_SIZE = 50;
export const MEMBERS_PAGE_PATH = '/sandbox/members';

/**
 * `GET /sandbox/members`: the simulated server's members with a checkbox per role, and buttons to save
 * roles, kick, ban, unban or add an account, plus the gateway's state and switches. Every button posts
 * to the same path and calls the guild driver, so the gateway dispatches the events a bot would get.
 */
export function membersPage(
  host: MembersPageHost,
  res: ServerResponse,
  params: URLSearchParams,
): void {
  const { guild, gateway } = host;
  const after = /^\d{1,20}$/.test(params.get('after') ?? '') ? params.get('after')! : undefined;
  const ids = guild.memberIds(after);
  const shown = ids.slice(0, PAGE_SIZE);
  const roles = guild.roles.filter((r) => r.id !== guild.id);
  const nameOf = (u: SimDiscordUser) => u.global_name ?? u.username;
  const action = (value: string, label: string) =>
    `<button type="submit" name="action" value="${value}" data-action="${value}">${label}</button>`;

  const rows = shown
    .map((id) => {
      const user = host.users.get(id)!;
      const has = new Set(guild.rolesOf(id) ?? []);
      const boxes = roles
        .map(
          (r) =>
            `<label><input type="checkbox" name="roles" value="${escapeHtml(r.id)}"` +
            ` data-role="${escapeHtml(r.name)}"${has.has(r.id) ? ' checked' : ''}> ${escapeHtml(r.name)}</label> `,
        )
        .join('');
      const unknown = [...has].filter((r) => !roles.some((k) => k.id === r));
      return (
        `<tr data-user-id="${escapeHtml(id)}"><td><strong>${escapeHtml(nameOf(user))}</strong><br>` +
        `<span class="sim">@${escapeHtml(user.username)} · ${escapeHtml(id)}</span></td><td>` +
        `<form method="post" action="${MEMBERS_PAGE_PATH}"><input type="hidden" name="user_id" value="${escapeHtml(id)}">` +
        boxes +
        (unknown.length
          ? `<span class="sim">other roles: ${escapeHtml(unknown.join(', '))}</span> `
          : '') +
        unknown.map((r) => `<input type="hidden" name="roles" value="${escapeHtml(r)}">`).join('') +
        '<br>' +
        action('save', 'Save roles') +
        ' ' +
        action('kick', 'Kick') +
        ' ' +
        action('ban', 'Ban') +
        '</form></td></tr>'
      );
    })
    .join('');
  const next =
    ids.length > PAGE_SIZE
      ? `<p><a id="next-page" href="${MEMBERS_PAGE_PATH}?after=${shown[shown.length - 1]}">Next ${PAGE_SIZE} →</a></p>`
      : '';
  const banned = [...guild.bans.keys()]
    .sort(compareSnowflakes)
    .map((id) => {
      const u = host.users.get(id);
      return (
        `<li data-user-id="${escapeHtml(id)}">${escapeHtml(u ? nameOf(u) : id)} ` +
        `<form method="post" action="${MEMBERS_PAGE_PATH}" style="display:inline">` +
        `<input type="hidden" name="user_id" value="${escapeHtml(id)}">${action('unban', 'Unban')}</form></li>`
      );
    })
    .join('');
  const outside = [...host.users.values()]
    .filter((u) => !guild.isMember(u.id) && !guild.isBanned(u.id) && !guild.generatedIds.has(u.id))
    .map(
      (u) =>
        `<li data-user-id="${escapeHtml(u.id)}">${escapeHtml(nameOf(u))} ` +
        `<form method="post" action="${MEMBERS_PAGE_PATH}" style="display:inline">` +
        `<input type="hidden" name="user_id" value="${escapeHtml(u.id)}">${action('add', 'Add to the server')} ` +
        `${action('ban', 'Ban')}</form></li>`,
    )
    .join('');
  const done = params.get('done');
  const notice = done ? `<p id="notice" role="status">${escapeHtml(done)}</p>` : '';
  sendHtml(
    res,
    200,
    `Simulated Discord — ${guild.name} members`,
    `<h1>Simulated Discord — ${escapeHtml(guild.name)}</h1>${notice}` +
      `<p>Members: <span id="member-count">${guild.memberCount}</span>. ` +
      'Changes here reach a connected bot as gateway events, and the member listing a bot reads.</p>' +
      `<form method="post" action="${MEMBERS_PAGE_PATH}"><p>Gateway: <span id="gateway-status">${
        gateway.refusing ? 'down' : 'up'
      }</span>, <span id="gateway-sessions">${gateway.openSessions}</span> bot session(s) connected. ` +
      (gateway.refusing
        ? action('gateway-up', 'Bring the gateway up')
        : action('gateway-down', 'Take the gateway down')) +
      ` ${action('gateway-drop', 'Drop connections')}</p></form>` +
      `<table id="members"><tbody>${rows}</tbody></table>${next}` +
      (banned ? `<h2>Banned</h2><ul id="banned">${banned}</ul>` : '') +
      (outside ? `<h2>Not in the server</h2><ul id="outside">${outside}</ul>` : '') +
      '<p class="sim">This is a simulator, not discord.com.</p>',
  );
}

/** `POST /sandbox/members`: one driver action, then back to the page (303) with a notice. */
export async function membersPagePost(
  host: MembersPageHost,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  // A browser posting from another site's page would carry its Origin: refuse it.
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let sameHost: boolean;
    try {
      sameHost = new URL(origin).host === req.headers.host;
    } catch {
      sameHost = false;
    }
    if (!sameHost) return sendText(res, 403, 'Cross-site form posts are refused.');
  }
  const form = new URLSearchParams(await readBody(req, 64 * 1024));
  const userId = form.get('user_id') ?? '';
  const { guild, gateway } = host;
  const user = host.users.get(userId);
  const who = user ? (user.global_name ?? user.username) : userId;
  let done: string;
  try {
    switch (form.get('action')) {
      case 'save':
        done = guild.setRoles(userId, form.getAll('roles'))
          ? `Roles of ${who} saved.`
          : `Roles of ${who} unchanged.`;
        break;
      case 'kick':
        guild.kick(userId);
        done = `${who} was kicked.`;
        break;
      case 'ban':
        guild.ban(userId, 'Banned from the sandbox page');
        done = `${who} was banned.`;
        break;
      case 'unban':
        guild.unban(userId);
        done = `${who} was unbanned.`;
        break;
      case 'add':
        guild.addMember(userId, form.getAll('roles'));
        done = `${who} joined the server.`;
        break;
      case 'gateway-down':
        gateway.down();
        done = 'The gateway is down.';
        break;
      case 'gateway-up':
        gateway.up();
        done = 'The gateway is up.';
        break;
      case 'gateway-drop':
        gateway.dropConnections();
        done = 'Gateway connections dropped.';
        break;
      default:
        return sendText(res, 400, 'Unknown action.');
    }
  } catch (error) {
    const message = (error as Error).message.replace(/^SimulatedGuild: /, '');
    return sendText(res, 400, `Not done: ${message}`);
  }
  redirect(res, `${MEMBERS_PAGE_PATH}?done=${encodeURIComponent(done)}`, 303);
}
