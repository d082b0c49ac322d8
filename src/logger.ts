import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'

/**
 * Paths pino blanks out wherever they appear in a log object. Nothing the
 * broker logs should hold a secret; this is the net under that rule.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'apiKey',
  'token',
  'jwtKey',
  'secret',
  'adminToken',
  'password',
  '*.authorization',
  '*.apiKey',
  '*.token',
  '*.jwtKey',
  '*.secret',
  '*.adminToken',
  '*.password',
  '*.TIKTOOLS_API_KEY',
  '*.ADMIN_TOKEN',
  '*.CACHE_ENCRYPTION_KEY',
  '*.AUTH_JWT_SECRET',
]

/** The broker's logger: JSON lines, ISO times, secrets redacted. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'tiktools-broker' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  }
  return destination === undefined ? pino(options) : pino(options, destination)
}
