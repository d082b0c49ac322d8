/**
 * `GET /demo/app.js`: the page's behaviour, a plain browser ES module that
 * uses the broker's own `/client.js` exactly as an app would. Kept as text
 * (the server build has no DOM types); it uses no template literals, so it
 * sits in this one as is.
 */
export const DEMO_SCRIPT = String.raw`import { createTokenClient } from '/client.js'

// The demo tenant serves a cached token while 30 s or more are left. Renewing
// at 20 s makes the broker mint a fresh one rather than hand back the old one.
const RENEW_BEFORE_SECONDS = 20
const FEED_LIMIT = 100
const ERROR_LIMIT = 10

const el = (id) => document.querySelector('[data-testid="' + id + '"]')
const ui = {
  signinForm: el('signin-form'), name: el('name'), user: el('user'),
  connectForm: el('connect-form'), creator: el('creator'), connect: el('connect'), disconnect: el('disconnect'),
  status: el('status'), expiry: el('token-expiry'), progress: el('token-progress'), expiresAt: el('token-expires-at'),
  creators: el('token-creators'), sockets: el('token-sockets'), cached: el('token-cached'),
  renewals: el('token-renewals'), tokenId: el('token-id'),
  errors: el('errors'), noErrors: el('no-errors'), feed: el('feed'), count: el('event-count'),
}
const wsUrl = document.body.dataset.wsUrl

const state = { jwt: null, client: null, live: null, ticker: null, token: null, renewing: null, renewals: 0, events: 0 }

ui.signinForm.addEventListener('submit', (e) => { e.preventDefault(); void signIn(ui.name.value) })
ui.connectForm.addEventListener('submit', (e) => { e.preventDefault(); connect(ui.creator.value) })
ui.disconnect.addEventListener('click', () => disconnect('Disconnected.'))

/** Gets a demo user JWT for a name: the stand-in for the app's own login. */
async function signIn(name) {
  ui.signinForm.setAttribute('aria-busy', 'true')
  try {
    const res = await fetch('/demo/session', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }),
    })
    const body = await res.json().catch(() => null)
    if (!res.ok || !body || typeof body.token !== 'string') {
      showError(body && typeof body.code === 'string'
        ? { code: body.code, message: body.message, status: res.status }
        : { code: 'BAD_RESPONSE', message: 'Sign-in failed', status: res.status })
      return
    }
    // Someone else now: a connection made as the previous user ends.
    if (state.live) disconnect(null)
    state.jwt = body.token
    ui.user.textContent = 'Signed in as ' + body.subject + ' (a 1 h user JWT).'
    ui.connect.disabled = false
    setStatus('Pick a creator and press Connect.')
  } catch (err) {
    showError({ code: 'NETWORK_ERROR', message: 'The broker could not be reached' })
  } finally {
    ui.signinForm.removeAttribute('aria-busy')
  }
}

function connect(creator) {
  disconnect(null)
  const client = createTokenClient({
    url: '/v1/token', credentials: () => state.jwt, creators: [creator], wsUrl, renewBeforeSeconds: RENEW_BEFORE_SECONDS,
  })
  state.client = client
  state.token = null
  state.renewals = 0
  ui.renewals.textContent = '0 times'
  setStatus('Getting a token for @' + creator + '…')
  state.live = client.connect(creator, {
    onOpen: () => {
      setStatus('Live: @' + creator)
      addEntry('system', 'connected to @' + creator)
      void follow(client, false)
    },
    onEvent: (event, data) => addEvent(event, data),
    onClose: (code, reason, willReconnect) => {
      addEntry('system', 'socket closed ' + code + (reason ? ' (' + reason + ')' : '') + (willReconnect ? ', reconnecting' : ''))
      if (state.client !== client) return
      if (willReconnect) setStatus('Reconnecting to @' + creator + '…')
      else stopped('Closed with ' + code + '. Press Connect to try again.')
    },
    onError: (err) => {
      if (state.client !== client) return
      showError(err)
      showQuota(client.quota)
      if (endsConnection(err)) stopped('Stopped: ' + err.code + '. Press Connect to try again.')
    },
  })
  // Joins the connection's own token request (one request for both), to show the token.
  void follow(client, false)
  state.ticker = setInterval(tick, 1000)
  ui.disconnect.disabled = false
}

/** Ends the connection by hand; the last token and quota stay on show. */
function disconnect(message) {
  const live = state.live
  stopped(message)
  if (live) live.close()
}

function stopped(message) {
  state.client = null
  state.live = null
  clearInterval(state.ticker)
  state.ticker = null
  ui.disconnect.disabled = true
  if (message) setStatus(message)
}

/** The client ends a connection on a token error that retrying cannot fix (see LiveHandlers.onError). */
function endsConnection(err) {
  if (!err || err.name !== 'BrokerClientError') return false
  if (err.code === 'NETWORK_ERROR' || err.code === 'ABORTED') return false
  return !(err.status === 408 || err.status === 429 || err.status >= 500)
}

/** Shows the client's current token: the held one while fresh, else the one it fetches now. */
async function follow(client, report) {
  try {
    const token = await client.getToken()
    if (state.client === client) showToken(token)
  } catch (err) {
    if (report && state.client === client) showError(err)
  }
  if (state.client === client) showQuota(client.quota)
}

/** Once a second: the countdown, and the renewal once the token is due for it. */
function tick() {
  const token = state.token
  if (!token || !state.client) return
  const left = token.expires_at - Date.now() / 1000
  ui.expiry.textContent = left > 0 ? Math.ceil(left) + ' s' : 'expired, renewing…'
  ui.progress.value = Math.max(0, Math.min(1, left / token.expire_after))
  const due = left < Math.min(RENEW_BEFORE_SECONDS, token.expire_after / 2)
  if (due && state.renewing !== token.token) {
    state.renewing = token.token // once per token, even if the broker hands the same one back
    void follow(state.client, true)
  }
}

function showToken(token) {
  if (state.token && state.token.token !== token.token) {
    state.renewals++
    ui.renewals.textContent = state.renewals + (state.renewals === 1 ? ' time' : ' times')
    addEntry('system', 'token renewed, now valid until ' + clock(token.expires_at))
  }
  state.token = token
  ui.expiresAt.textContent = clock(token.expires_at)
  ui.creators.textContent = token.allowed_creators ? token.allowed_creators.map((c) => '@' + c).join(', ') : 'any'
  ui.sockets.textContent = String(token.max_websockets)
  ui.cached.textContent = token.cached ? 'yes' : 'no, minted now'
  ui.tokenId.textContent = tokenId(token.token)
  tick()
}

function showQuota(quota) {
  showLimits('upstream', quota.upstream, (reset) => 'at ' + clock(reset))
  showLimits('broker', quota.broker, (reset) => 'in ' + reset + ' s')
}

function showLimits(which, info, resetText) {
  el('quota-' + which + '-limit').textContent = info.limit === null ? '—' : String(info.limit)
  el('quota-' + which + '-remaining').textContent = info.remaining === null ? '—' : String(info.remaining)
  el('quota-' + which + '-reset').textContent = info.reset === null ? '—' : resetText(info.reset)
}

function showError(err) {
  const code = err && typeof err.code === 'string' ? err.code : 'ERROR'
  const li = document.createElement('li')
  li.dataset.code = code
  const name = document.createElement('code')
  name.textContent = code
  const text = document.createElement('span')
  const details = [err && err.message ? err.message : String(err)]
  if (err && err.status) details.push('HTTP ' + err.status)
  if (err && typeof err.retryAfter === 'number') details.push('Retry-After ' + err.retryAfter + ' s')
  text.textContent = details.join(' · ')
  li.append(timeNow(), name, text)
  ui.errors.prepend(li)
  while (ui.errors.children.length > ERROR_LIMIT) ui.errors.lastElementChild.remove()
  ui.noErrors.hidden = true
}

function addEvent(event, data) {
  state.events++
  ui.count.textContent = String(state.events)
  addEntry(event, describe(event, data && typeof data === 'object' ? data : {}))
}

function describe(event, d) {
  const who = d.user ? d.user.nickname || d.user.uniqueId : 'someone'
  switch (event) {
    case 'roomInfo': return d.title + ' · ' + d.viewerCount + ' viewers'
    case 'chat': return who + ': ' + d.comment
    case 'like': return who + ' sent ' + d.likeCount + (d.likeCount === 1 ? ' like' : ' likes') + ' · ' + d.totalLikeCount + ' in all'
    case 'gift': return who + ' sent ' + d.giftName + ' ×' + d.repeatCount + ' (' + d.diamondCount + ' diamonds each)'
    case 'member': return who + ' joined'
    default: return JSON.stringify(d).slice(0, 200)
  }
}

/** One feed line, newest on top; the oldest fall off past FEED_LIMIT. */
function addEntry(kind, text) {
  const li = document.createElement('li')
  li.dataset.event = kind
  const tag = document.createElement('span')
  tag.className = 'tag'
  tag.textContent = kind
  const body = document.createElement('span')
  body.className = 'text'
  body.textContent = text
  li.append(timeNow(), tag, body)
  ui.feed.prepend(li)
  while (ui.feed.children.length > FEED_LIMIT) ui.feed.lastElementChild.remove()
}

/** The token's jti (read, not verified): it tells one token from the next, which the JWT's first bytes do not. */
function tokenId(jwt) {
  try {
    const claims = JSON.parse(atob(jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')))
    if (typeof claims.jti === 'string') return claims.jti.slice(0, 8) + '…'
  } catch {}
  return jwt.slice(0, 12) + '…'
}

function setStatus(text) {
  ui.status.textContent = text
}

function timeNow() {
  const now = new Date()
  const time = document.createElement('time')
  time.dateTime = now.toISOString()
  time.textContent = clockText(now)
  return time
}

function clock(unixSeconds) {
  return clockText(new Date(unixSeconds * 1000))
}

function clockText(date) {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })
}
`
