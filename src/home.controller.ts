import { Controller, Get, Header, Req } from '@nestjs/common';
import type { DiscourseConnectUser } from 'nestjs-discourse-connect';
import {
  discordAvatarUrl,
  DiscourseConnectRoutes,
  DiscourseConnectSettings,
} from 'nestjs-discourse-connect';

const esc = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

/** The host app's own page: shows who is signed in and links to the forums. */
@Controller()
export class HomeController {
  constructor(
    private readonly routes: DiscourseConnectRoutes,
    private readonly settings: DiscourseConnectSettings,
  ) {}

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  home(@Req() req: { user?: DiscourseConnectUser | null }): string {
    const user = req.user;
    // The module's routes where the app mounts them (a global prefix moves them).
    const forumLink = esc(`${this.routes.path('forumLink')}?return_path=%2F`);
    // The first forum is the forum link's default; each other one is named in ?forum=.
    const otherForums = (verb: string) =>
      this.settings.forums
        .slice(1)
        .map((forum) => {
          const href = esc(
            // return_path is a path on the forum's origin: a subfolder forum's home is its path.
            `${this.routes.path('forumLink')}?forum=${encodeURIComponent(forum.name)}&return_path=${encodeURIComponent(`${forum.path}/`)}`,
          );
          return `<p><a id="forum-link-${esc(forum.name)}" href="${href}">${verb} forum: ${esc(forum.name)}</a></p>`;
        })
        .join('');
    // The first Discourse forum's link (none on a site with Vanilla forums only).
    const discourseLink = (verb: string) =>
      this.settings.forums.length
        ? `<p><a id="forum-link" href="${forumLink}">${verb} the forum</a></p>`
        : '';
    // The Vanilla forum link, when a Vanilla forum is configured.
    const vanillaLink = this.settings.vanilla
      ? `<p><a id="vanilla-forum-link" href="${esc(this.routes.path('vanillaForumLink'))}">${user ? 'Go to' : 'Visit'} the Vanilla forum</a></p>`
      : '';
    // In the sandbox: the simulated Discord's page where roles are changed, kicks and bans made.
    const membersPage = process.env.SANDBOX_DISCORD_MEMBERS_URL;
    const sandboxLink = membersPage
      ? `<p><a id="sandbox-discord-members" href="${esc(membersPage)}">Simulated Discord: change members' roles, kick or ban</a></p>`
      : '';
    const signIn = esc(this.routes.path('signIn'));
    const signOut = esc(this.routes.path('signOut'));
    const body = user
      ? `<p><img src="${esc(discordAvatarUrl(user.metadata))}" alt="" width="48" height="48" style="border-radius:50%;vertical-align:middle">
         Signed in as <strong id="current-user">${esc(user.displayName)}</strong> (@${esc(user.username)})</p>
         ${discourseLink('Go to')}${otherForums('Go to')}${vanillaLink}
         <form method="post" action="${signOut}"><button id="sign-out" type="submit">Sign out</button></form>`
      : `<p id="current-user-none">You are not signed in.</p>
         <p><a id="sign-in" href="${signIn}">Sign in with Discord</a></p>
         ${discourseLink('Visit')}${otherForums('Visit')}${vanillaLink}`;
    return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Community site</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}</style></head>
<body><h1>Community site</h1>${body}${sandboxLink}</body></html>`;
  }
}
