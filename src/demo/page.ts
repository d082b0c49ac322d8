/** What the page needs to know: the creators to offer and where the LIVE sockets are. */
export interface PageOptions {
  creators: string[]
  wsUrl: string
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Text made safe for HTML content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string)
}

/**
 * The page's policy: its own script, style and broker only, plus the LIVE
 * WebSocket origin. Nothing external can load, by construction.
 */
export function contentSecurityPolicy(wsUrl: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src 'self' ${new URL(wsUrl).origin}`,
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
}

function quotaRow(which: 'upstream' | 'broker', label: string, headers: string): string {
  const cell = (field: string) => `<td data-testid="quota-${which}-${field}">—</td>`
  return `<tr><th scope="row">${label}<code class="headers">${headers}</code></th>${cell('limit')}${cell('remaining')}${cell('reset')}</tr>`
}

/** The `/demo` HTML: plain markup, its behaviour in `/demo/app.js`. */
export function demoPage({ creators, wsUrl }: PageOptions): string {
  const options = creators.map((c) => `<option value="${escapeHtml(c)}">@${escapeHtml(c)}</option>`).join('')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tiktools-broker · demo</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/demo/style.css">
<script type="module" src="/demo/app.js"></script>
</head>
<body data-ws-url="${escapeHtml(wsUrl)}">
<header class="top">
  <h1>tiktools-broker <span class="badge">dev demo</span></h1>
  <p>Sign in as a made-up user: the page asks this broker for a scoped tik.tools token with
  <code>/client.js</code> and opens the simulator's LIVE stream with it.</p>
</header>
<main class="layout">
  <div class="side">
    <section class="card" aria-labelledby="signin-title">
      <h2 id="signin-title">1 · Sign in</h2>
      <form data-testid="signin-form" novalidate>
        <label for="name">Your name</label>
        <div class="row">
          <input id="name" name="name" data-testid="name" autocomplete="username" maxlength="48" placeholder="ada" required>
          <button type="submit" data-testid="signin">Sign in</button>
        </div>
        <p class="hint" data-testid="user" aria-live="polite">Not signed in.</p>
      </form>
    </section>
    <section class="card" aria-labelledby="connect-title">
      <h2 id="connect-title">2 · Connect</h2>
      <form data-testid="connect-form">
        <label for="creator">Creator</label>
        <div class="row">
          <select id="creator" name="creator" data-testid="creator">${options}</select>
          <button type="submit" data-testid="connect" disabled>Connect</button>
          <button type="button" data-testid="disconnect" class="secondary" disabled>Disconnect</button>
        </div>
        <p class="status" role="status" data-testid="status">Sign in, pick a creator, press Connect.</p>
      </form>
    </section>
    <section class="card" aria-labelledby="token-title">
      <h2 id="token-title">Token</h2>
      <dl class="facts">
        <dt>Expires in</dt>
        <dd><span data-testid="token-expiry" class="countdown">—</span>
          <progress data-testid="token-progress" max="1" value="0" aria-label="Share of the token's lifetime left"></progress></dd>
        <dt>Expires at</dt><dd data-testid="token-expires-at">—</dd>
        <dt>Creators</dt><dd data-testid="token-creators">—</dd>
        <dt>WebSockets</dt><dd data-testid="token-sockets">—</dd>
        <dt>From cache</dt><dd data-testid="token-cached">—</dd>
        <dt>Renewed</dt><dd data-testid="token-renewals">0 times</dd>
        <dt>Token id</dt><dd><code data-testid="token-id">—</code></dd>
      </dl>
      <p class="hint">Renewed 20 s before expiry. The open socket keeps its token until tik.tools
      closes it (4003); the client then reconnects with the new one.</p>
    </section>
    <section class="card" aria-labelledby="quota-title">
      <h2 id="quota-title">Rate limits</h2>
      <table data-testid="quota">
        <caption>As the last token answer carried them</caption>
        <thead><tr><th scope="col">Headers</th><th scope="col">Limit</th><th scope="col">Remaining</th><th scope="col">Reset</th></tr></thead>
        <tbody>
          ${quotaRow('upstream', 'tik.tools', 'X-RateLimit-*')}
          ${quotaRow('broker', 'Broker', 'RateLimit-*')}
        </tbody>
      </table>
    </section>
    <section class="card" aria-labelledby="errors-title">
      <h2 id="errors-title">Errors</h2>
      <p class="hint" data-testid="no-errors">None so far.</p>
      <ul class="errors" data-testid="errors" aria-live="assertive"></ul>
    </section>
  </div>
  <section class="card feed" aria-labelledby="feed-title">
    <h2 id="feed-title">Live events <span class="count" data-testid="event-count">0</span></h2>
    <p class="hint">Newest first; the last 100 are kept.</p>
    <ol data-testid="feed" aria-live="polite" aria-relevant="additions"></ol>
  </section>
</main>
<footer>Dev only: every secret behind this page was made up when <code>npm run dev</code> started.</footer>
</body>
</html>
`
}
