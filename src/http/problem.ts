// The one place errors become responses: AppError subclasses (and the validator's HTTP errors) → RFC 9457 problem+json.
import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { AppError, BadRequest, MethodNotAllowed, NotFound, PayloadTooLarge, UnsupportedMedia } from '../errors.js';

/** express-openapi-validator's HttpError shape (the class itself is not exported). */
interface ValidatorError {
  status: number;
  message: string;
  errors: { path?: string; message?: string }[];
}

function isValidatorError(err: unknown): err is ValidatorError {
  const e = err as Partial<ValidatorError> | null;
  return typeof e === 'object' && e !== null && typeof e.status === 'number' && Array.isArray(e.errors);
}

/** Busboy's complaints about a malformed multipart body, which the validator reports as 500. */
const MALFORMED_MULTIPART = /Unexpected end of form|Malformed part header|Part terminated early|Boundary not found/i;

/** Known failures as AppError; anything else is undefined (an internal error). */
export function toAppError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err;
  if (!isValidatorError(err)) return undefined;
  const errors = err.errors.map((e) => ({ path: String(e.path ?? ''), message: String(e.message ?? '') }));
  switch (err.status) {
    case 400:
      return new BadRequest(errors.map((e) => `${e.path ? e.path + ' ' : ''}${e.message}`).join('; ') || err.message, errors);
    case 404:
      return new NotFound(err.message);
    case 405:
      return new MethodNotAllowed(err.message);
    case 413:
      return new PayloadTooLarge(err.message);
    case 415:
      // Every request body in the contract is multipart; the validator's own message names no expected type.
      return new UnsupportedMedia(`the request body must be multipart/form-data (${err.message})`);
    case 500:
      return MALFORMED_MULTIPART.test(err.message) ? new BadRequest(`malformed multipart body: ${err.message}`) : undefined;
    default:
      return undefined;
  }
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new NotFound(`no route for ${req.method} ${req.path}`));
};

export function problemHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const log = (res.locals.log as Logger | undefined) ?? logger;
    const known = toAppError(err);
    const body: Record<string, unknown> = known
      ? { type: known.type, title: known.title, status: known.status, detail: known.message, ...known.extras }
      : { type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'an unexpected error occurred; see the server log with this request id' };
    if (known) log.info({ status: known.status, problem: known.slug, detail: known.message }, 'request refused');
    else log.error({ err }, 'unhandled error');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    body.instance = req.originalUrl.split('?')[0];
    if (known?.retryAfter !== undefined) res.setHeader('Retry-After', String(known.retryAfter));
    res.status(body.status as number).type('application/problem+json').json(body);
  };
}
