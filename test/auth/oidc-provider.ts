import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair } from 'jose'
import Provider from 'oidc-provider'

/** A real OpenID Provider (oidc-provider) on 127.0.0.1:0 issuing JWT access tokens to test clients. */
export interface TestProvider {
  issuer: string
  /** A JWT access token for `clientId` (its `sub`), audience `tiktok-broker`, with the given extra claims. */
  accessToken(clientId: string): Promise<string>
  /** Restarts the provider signing with a new key (published beside the old one); answers the new kid. */
  rotateKey(): Promise<string>
  /** Discovery and key-set requests seen, by path. */
  requests: string[]
  /** Makes every request fail at the socket (the provider "goes away") or work again. */
  setDown(down: boolean): void
  close(): Promise<void>
}

export const AUDIENCE = 'tiktok-broker'
export const CLIENTS = ['web-app', 'other-app'] as const
const SECRET = 'client-secret-for-tests-0123456789'

/** Claims each client's tokens carry: an Auth0-style namespaced creators claim. */
export const CREATORS_CLAIM = 'https://broker.example/creators'

async function signingKey(kid: string): Promise<Record<string, unknown>> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' }
}

function providerFor(issuer: string, keys: Record<string, unknown>[]): Provider {
  const provider = new Provider(issuer, {
    clients: CLIENTS.map((client_id) => ({
      client_id,
      client_secret: SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    })),
    jwks: { keys: keys as never },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:tiktok-broker',
        getResourceServerInfo: () => ({
          scope: 'live',
          audience: AUDIENCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (_ctx: unknown, token: { clientId: string }) => ({ [CREATORS_CLAIM]: token.clientId === 'web-app' ? ['a1', 'a2'] : ['a3'] }),
  })
  return provider
}

/** Starts a provider; `t.teardown(provider.close)` it. */
export async function startProvider(): Promise<TestProvider> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined
  const requests: string[] = []
  let down = false
  const server: Server = createServer((req, res) => {
    requests.push((req.url ?? '').split('?')[0] as string)
    if (down) return req.socket.destroy()
    handler?.(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  let keys = [await signingKey('key-1')]
  handler = providerFor(issuer, keys).callback()
  return {
    issuer,
    requests,
    setDown(value) {
      down = value
    },
    async accessToken(clientId) {
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: SECRET, scope: 'live' }),
      })
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string }
      if (body.access_token === undefined) throw new Error(`token endpoint: ${body.error}: ${body.error_description}`)
      return body.access_token
    },
    async rotateKey() {
      const kid = `key-${keys.length + 1}`
      keys = [await signingKey(kid), ...keys]
      handler = providerFor(issuer, keys).callback()
      return kid
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
