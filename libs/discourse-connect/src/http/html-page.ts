const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export interface PageLink {
  href: string;
  label: string;
}

/**
 * A small self-contained page for people (errors, confirmations). Everything passed in is escaped;
 * `form` renders a same-origin POST button.
 */
export function renderPage(options: {
  title: string;
  message: string;
  links?: PageLink[];
  form?: { action: string; label: string };
}): string {
  const links = (options.links ?? [])
    .map((l) => `<a href="${escapeHtml(l.href)}">${escapeHtml(l.label)}</a>`)
    .join(' ');
  const form = options.form
    ? `<form method="post" action="${escapeHtml(options.form.action)}"><button type="submit">${escapeHtml(options.form.label)}</button></form>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(options.title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}a,button{margin-right:1rem}button{font:inherit;padding:.4rem 1rem}</style></head>
<body><main><h1>${escapeHtml(options.title)}</h1><p id="message">${escapeHtml(options.message)}</p>${form}<p>${links}</p></main></body></html>
`;
}
