import type { FastifyServerOptions } from 'fastify'

/** Replaces the values of `apiKey` and `jwtKey` in a request URL. */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:apiKey|jwtKey)=)[^&#]*/gi, '$1[redacted]')
}

/** Fastify logger options: request URLs carry the apiKey in the query string, so they are redacted. */
export const redactingLogger: FastifyServerOptions['logger'] = {
  level: 'info',
  serializers: {
    req: (req: { method: string; url: string }) => ({ method: req.method, url: redactUrl(req.url) }),
  },
}
