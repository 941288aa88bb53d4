/**
 * Errors are data. Services throw AppError with a code; this file owns the single table from
 * code to HTTP status and the member-API body `{ status: 'error' | 'unauthorized', message }`.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
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
  | 'rate_limited';

const STATUS: Record<ErrorCode, number> = {
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
};

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export function httpStatusOf(code: ErrorCode): number {
  return STATUS[code];
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

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | AppError, request, reply) => {
    const appError = err instanceof AppError ? err : fromFastifyError(err as FastifyError);
    if (appError) {
      // One msg per line: the refusal's own message goes in `reason`, with anything key-like
      // (a refusal may quote the input) redacted.
      request.log.info({ code: appError.code, reason: redactSecrets(appError.message) }, 'request refused');
      return reply.code(httpStatusOf(appError.code)).send(errorBody(appError.code, appError.message, appError.details));
    }
    request.log.error({ err }, 'request failed');
    return reply.code(500).send({ status: 'error', message: 'Internal server error' });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('not_found', `No such endpoint: ${request.method} ${request.url.split('?')[0]}`));
  });
}
