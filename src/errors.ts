/**
 * Every error the broker answers with, as the contract names them.
 * The error handler turns a {@link BrokerError} into
 * `{"status_code": <status>, "code": "<CODE>", "message": "..."}`.
 */
export const ERRORS = {
  BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  CREATORS_REQUIRED: { status: 400, message: 'allowed_creators is required for this tenant.' },
  UNAUTHENTICATED: { status: 401, message: 'A valid credential is required.' },
  CREATOR_NOT_ALLOWED: { status: 403, message: 'A requested creator is not allowed.' },
  ORIGIN_NOT_ALLOWED: { status: 403, message: 'This origin is not allowed for the tenant.' },
  TENANT_DISABLED: { status: 403, message: 'This tenant is disabled.' },
  NOT_FOUND: { status: 404, message: 'Not found.' },
  REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time.' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is larger than 16 KiB.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body must be application/json.' },
  EXPECTATION_FAILED: { status: 417, message: 'The only expectation this server meets is 100-continue.' },
  HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are larger than 32 KiB in all.' },
  RATE_LIMITED: { status: 429, message: 'Too many requests; retry later.' },
  UPSTREAM_RATE_LIMITED: { status: 429, message: 'The upstream quota is spent; retry later.' },
  UPSTREAM_ERROR: { status: 502, message: 'The upstream answered with an error.' },
  UPSTREAM_UNAVAILABLE: { status: 503, message: 'The upstream is unavailable; retry later.' },
  NOT_READY: { status: 503, message: 'Not ready.' },
  INTERNAL: { status: 500, message: 'Internal error.' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERRORS

/** Optional extras an error carries to the response: headers such as `Retry-After`. */
export interface BrokerErrorOptions {
  headers?: Record<string, string | number>
  cause?: unknown
}

/**
 * An error with a contract code. Throw it anywhere in a request; the error
 * handler renders it.
 *
 * @example
 * throw new BrokerError('CREATOR_NOT_ALLOWED', 'creator "x" is not allowed')
 */
export class BrokerError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly headers: Record<string, string | number>

  constructor(code: ErrorCode, message?: string, options: BrokerErrorOptions = {}) {
    super(message ?? ERRORS[code].message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'BrokerError'
    this.code = code
    this.statusCode = ERRORS[code].status
    this.headers = options.headers ?? {}
  }
}

/** The contract's error body. */
export interface ErrorBody {
  status_code: number
  code: ErrorCode
  message: string
}

/** The media type of every JSON body the broker writes (the contract's answers and errors). */
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8'

/** Serialises an error code and message into the contract's body. */
export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { status_code: ERRORS[code].status, code, message }
}
