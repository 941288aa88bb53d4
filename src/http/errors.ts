/**
 * Errors are data. Services throw AppError with a code; this file owns the single table from
 * code to HTTP status (`ERROR_STATUS`) and the member-API body `{ status: 'error' | 'unauthorized', message }`.
 * Another format (an XML, SOAP or gateway adapter) renders the same AppError with its own
 * `ErrorRenderer`, registered on its encapsulated plugin with `registerErrorHandler(plugin, render)`.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { redactSecrets } from './log-safety.ts';

export type ErrorCode =
  | 'bad_input'
  | 'unauthenticated'
  | 'forbidden'
  | 'key_expired'
  | 'cross_site'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'payment_declined'
  | 'upstream_unavailable'
  | 'internal';

/** HTTP status of each code: the one table every adapter answers with. */
export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = {
  bad_input: 400,
  unauthenticated: 401,
  forbidden: 401, // kansa answers a session without the right role with 401 (see src/http/README.md)
  key_expired: 403,
  cross_site: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  payment_declined: 402,
  upstream_unavailable: 503,
  internal: 500,
};

/** Seconds a client is told to wait (Retry-After) when a service we depend on is unavailable. */
export const UPSTREAM_RETRY_AFTER_SECONDS = 30;

export class AppError extends Error {
  /** Seconds the client should wait before trying again (sent as Retry-After), when known. */
  retryAfterSeconds?: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AppError';
  }
}

/** The kinds of service Roster depends on, as named to a client. */
export type UpstreamKind = 'mail' | 'payment' | 'database';

/**
 * A service we depend on failed. The client gets a fixed message naming only the kind of service;
 * `cause` (which may hold addresses, host names or the service's own words) is only logged.
 */
export function upstreamUnavailable(service: UpstreamKind, cause: unknown): AppError {
  return new AppError('upstream_unavailable', `The ${service} service is unavailable; try again shortly`, { service }, { cause });
}

/** A payment gateway declined a payment: its reason is for the payer, in the message and in `details.reason`. */
export function paymentDeclined(reason: string): AppError {
  return new AppError('payment_declined', `The payment was declined: ${reason}`, { reason });
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_STATUS[code];
}

export interface ErrorBody {
  status: 'error' | 'unauthorized';
  message: string;
  [key: string]: unknown;
}

export function errorBody(code: ErrorCode, message: string, details?: Record<string, unknown>): ErrorBody {
  const unauthorized = code === 'unauthenticated' || code === 'forbidden';
  return { ...details, status: unauthorized ? 'unauthorized' : 'error', message };
}

/** Turns Fastify's own errors (schema, JSON, body size) into the same shape, never a 500. */
function fromFastifyError(err: FastifyError): AppError | undefined {
  if (err.validation) {
    const where = err.validationContext ?? 'request';
    const detail = err.validation
      .map((v) => {
        const field = (v.instancePath || '').replace(/^\//, '').replace(/\//g, '.');
        const missing = (v.params as { requiredProperty?: string })?.requiredProperty;
        if (missing) return `${missing} is required`;
        const extra = (v.params as { additionalProperty?: string })?.additionalProperty;
        if (extra) return `unknown field "${extra}"`;
        return `${field || where} ${v.message}`;
      })
      .join('; ');
    return new AppError('bad_input', `Invalid ${where}: ${detail}`);
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('bad_input', 'The request body is not valid JSON');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('payload_too_large', 'The request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('unsupported_media_type', 'Send the body as application/json or application/x-www-form-urlencoded');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('bad_input', 'The Content-Length header does not match the body');
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new AppError(err.statusCode === 404 ? 'not_found' : 'bad_input', err.message);
  }
  return undefined;
}

/**
 * Renders an AppError in one adapter's format. It returns the payload to send and may set headers
 * (its content type) on `reply`; the status and Retry-After are already set.
 */
export type ErrorRenderer = (error: AppError, reply: FastifyReply) => unknown;

/** The member API's JSON body. */
export const memberApiBody: ErrorRenderer = (error) => errorBody(error.code, error.message, error.details);

const INTERNAL_MESSAGE = 'Internal server error';

/** The cause of an upstream failure as logged: its name, code and message with anything key-like redacted. */
function loggableCause(cause: unknown): Record<string, unknown> {
  if (!(cause instanceof Error)) return { message: redactSecrets(String(cause)) };
  const { code, responseCode } = cause as { code?: unknown; responseCode?: unknown };
  return { type: cause.name, code, responseCode, message: redactSecrets(cause.message) };
}

/** The AppError for anything thrown: itself, Fastify's own refusal, or a 500 whose cause is logged. */
function toAppError(err: unknown, request: FastifyRequest): AppError {
  const appError = err instanceof AppError ? err : fromFastifyError(err as FastifyError);
  if (!appError) {
    request.log.error({ err }, 'request failed');
    return new AppError('internal', INTERNAL_MESSAGE);
  }
  if (appError.code === 'upstream_unavailable') {
    request.log.warn({ code: appError.code, service: appError.details?.service, cause: loggableCause(appError.cause) }, 'upstream unavailable');
  } else {
    // One msg per line: the refusal's own message goes in `reason`, with anything key-like
    // (a refusal may quote the input) redacted.
    request.log.info({ code: appError.code, reason: redactSecrets(appError.message) }, 'request refused');
  }
  return appError;
}

function send(reply: FastifyReply, error: AppError, render: ErrorRenderer): FastifyReply {
  reply.code(httpStatusOf(error.code));
  const retryAfter = error.retryAfterSeconds ?? (error.code === 'upstream_unavailable' ? UPSTREAM_RETRY_AFTER_SECONDS : undefined);
  if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
  return reply.send(render(error, reply));
}

/**
 * Sets the error and not-found handlers of `app` (an encapsulated plugin gets its own; the root
 * app gets the member API's). Every error of a route in `app`, Fastify's own included (schema,
 * JSON, 413, 415), and every 404 under the plugin's prefix is rendered by `render`.
 */
export function registerErrorHandler(app: FastifyInstance, render: ErrorRenderer = memberApiBody, options: { notFound?: boolean } = {}): void {
  app.setErrorHandler((err: FastifyError | AppError, request, reply) => send(reply, toAppError(err, request), render));
  // A plugin that shares its prefix with others (a few routes under /api) leaves 404s to them.
  if (options.notFound === false) return;
  app.setNotFoundHandler((request, reply) => {
    send(reply, new AppError('not_found', `No such endpoint: ${request.method} ${request.url.split('?')[0]}`), render);
  });
}
