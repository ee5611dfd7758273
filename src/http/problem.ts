// The one place errors become responses: AppError subclasses (and the validator's HTTP errors) → RFC 9457 problem+json.
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { STATUS_CODES } from 'node:http';
import { AppError, BadRequest, HeadersTooLarge, MalformedHttp, MethodNotAllowed, NotFound, PayloadTooLarge, SlowRequest, UnsupportedMedia } from '../errors.js';

/** express-openapi-validator's HttpError shape (the class itself is not exported). */
interface ValidatorError {
  status: number;
  message: string;
  errors: { path?: string; message?: string }[];
  /** On 405: { Allow: 'get, post' } (the contract's methods for the path, lower case). */
  headers?: Record<string, string>;
}

function isValidatorError(err: unknown): err is ValidatorError {
  const e = err as Partial<ValidatorError> | null;
  return typeof e === 'object' && e !== null && typeof e.status === 'number' && Array.isArray(e.errors);
}

/** Busboy's complaints about a malformed multipart body, which the validator reports as 500. */
const MALFORMED_MULTIPART = /Unexpected end of form|Malformed part header|Part terminated early|Boundary not found/i;

/** body-parser's errors (express.json): they carry `type` such as entity.too.large or entity.parse.failed. */
interface BodyParserError {
  status: number;
  type: string;
  message: string;
  limit?: number;
  /** The raw body, on entity.parse.failed. */
  body?: unknown;
}

/** What a JSON body is when it parses but is no object or array (body-parser's strict mode refuses those), else undefined. */
function jsonScalarKind(body: unknown): string | undefined {
  if (typeof body !== 'string') return undefined;
  try {
    const v: unknown = JSON.parse(body);
    return v === null ? 'null' : typeof v === 'object' ? undefined : `a ${typeof v}`;
  } catch {
    return undefined;
  }
}

function isBodyParserError(err: unknown): err is BodyParserError {
  const e = err as Partial<BodyParserError> | null;
  return typeof e === 'object' && e !== null && typeof e.status === 'number' && typeof e.type === 'string' && /^(entity|encoding|charset|request)\./.test(e.type);
}

/**
 * A body that does not inflate as its Content-Encoding says (gzip, deflate, br; empty or corrupt): body-parser passes
 * zlib's own error on with status 400 but no `type`.
 */
function isInflateError(err: unknown): err is Error & { code: string } {
  const e = err as { status?: unknown; code?: unknown } | null;
  return err instanceof Error && e?.status === 400 && typeof e.code === 'string' && /^(Z_|ERR__ERROR_|ERR_BROTLI)/.test(e.code);
}

/** The upload limits behind a 413 from multer, whose own messages ("Too many files", "File too large") name none. */
export interface UploadLimitsNamed {
  maxFiles: number;
  maxFileBytes: number;
}

/** What a refusal's detail may name besides the error: the request's Content-Type and the upload limits. */
export interface ProblemContext {
  contentType?: string | undefined;
  limits?: UploadLimitsNamed | undefined;
}

/** Paths whose request bodies are application/json only (openapi.yaml); every other body is multipart/form-data. */
const JSON_BODY_PREFIXES = ['/v2/', '/label-studio/'];

/**
 * Known failures as AppError; anything else is undefined (an internal error). `path` picks the expected media type;
 * `context` lets the detail say what was sent and which limit was passed.
 */
export function toAppError(err: unknown, path = '', context: ProblemContext = {}): AppError | undefined {
  if (err instanceof AppError) return err;
  if (isInflateError(err)) {
    return new BadRequest(`the request body does not decompress as its Content-Encoding says (${err.message}); send it uncompressed or as valid gzip, deflate or br`);
  }
  if (isBodyParserError(err)) {
    if (err.type === 'entity.too.large') return new PayloadTooLarge(`the JSON body is larger than ${err.limit ?? 'the limit of'} bytes (ASM_FER_MAX_JSON_BYTES)`);
    if (err.type === 'entity.parse.failed') {
      // Strict mode words a valid scalar as a syntax error ("Unexpected token '4', "42" is not valid JSON"); every JSON
      // body of the contract is an object, so say that instead.
      const scalar = jsonScalarKind(err.body);
      return new BadRequest(scalar ? `the JSON body must be an object; this one is ${scalar}` : `malformed JSON body: ${err.message}`);
    }
    if (err.status === 415) return new UnsupportedMedia(err.message);
    return err.status >= 400 && err.status < 500 ? new BadRequest(err.message) : undefined;
  }
  if (!isValidatorError(err)) return undefined;
  const errors = err.errors.map((e) => ({ path: String(e.path ?? ''), message: String(e.message ?? '') }));
  switch (err.status) {
    case 400:
      // Busboy's count limit on text parts, which the validator reports as 400; the contract says too many parts are 413.
      if (err.message === 'Too many fields') return new PayloadTooLarge('too many text parts (label, box, face and id parts: at most 6 per image allowed by ASM_FER_MAX_FILES)');
      // A file part without a filename reaches multer as a text field: over the text limit, or else no image at all.
      if (err.message === 'Field value too long') {
        return new BadRequest('a text part is longer than 1024 bytes; an image must be a file part, with a filename in its Content-Disposition (form-data; name="image"; filename="face.png")');
      }
      if (errors.some((e) => e.path === '/body/image')) {
        return new BadRequest('no "image" file part; each image must be a file part, with a filename in its Content-Disposition (form-data; name="image"; filename="face.png")', errors);
      }
      return new BadRequest(errors.map((e) => `${e.path ? e.path + ' ' : ''}${e.message}`).join('; ') || err.message, errors);
    case 404:
      return new NotFound(err.message);
    case 405: {
      // The contract's methods for the path; HEAD is not among them (the validator refuses it too), so Allow is exact.
      const allow = (err.headers?.Allow ?? '').split(',').map((m) => m.trim().toUpperCase()).filter((m) => m.length > 0);
      return new MethodNotAllowed(err.message, allow);
    }
    case 413: {
      const { limits } = context;
      if (limits && err.message === 'Too many files') return new PayloadTooLarge(`more than ${limits.maxFiles} image parts; the limit is ${limits.maxFiles} per request (ASM_FER_MAX_FILES)`);
      if (limits && err.message === 'File too large') return new PayloadTooLarge(`an image part is larger than ${limits.maxFileBytes} bytes (ASM_FER_MAX_FILE_BYTES)`);
      return new PayloadTooLarge(err.message);
    }
    case 415: {
      // The validator's own message names no expected type ("unsupported media type undefined" for a request without
      // a Content-Type); v2 and Label Studio bodies are JSON, v1 bodies multipart.
      const json = JSON_BODY_PREFIXES.some((prefix) => path.startsWith(prefix));
      const sent = context.contentType ? `Content-Type ${context.contentType.split(';')[0]}` : 'no Content-Type header';
      const how = json ? '' : ', one file part per image (curl -F image=@face.png)';
      return new UnsupportedMedia(`the request body must be ${json ? 'application/json' : 'multipart/form-data'}${how}; this request has ${sent}`);
    }
    case 500:
      return MALFORMED_MULTIPART.test(err.message) ? new BadRequest(`malformed multipart body: ${err.message}`) : undefined;
    default:
      return undefined;
  }
}

function problemBody(known: AppError): Record<string, unknown> {
  return { type: known.type, title: known.title, status: known.status, detail: known.message, ...known.extras };
}

/**
 * What to answer when Node's HTTP parser rejects a connection before Express sees a request (Node's 'clientError'):
 * a whole HTTP/1.1 problem+json response that closes the connection, or undefined when the peer is gone already.
 */
export function clientErrorProblem(err: NodeJS.ErrnoException, headersTimeoutMs: number): { problem: AppError; raw: string } | undefined {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return undefined;
  const problem =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new SlowRequest(`the request line and headers did not arrive within ${headersTimeoutMs} ms`)
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new HeadersTooLarge('the request headers are larger than this server accepts')
        : new MalformedHttp('the bytes received are not a well-formed HTTP/1.1 request');
  const body = JSON.stringify(problemBody(problem));
  const head = [
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? ''}`,
    'Content-Type: application/problem+json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  return { problem, raw: `${head.join('\r\n')}\r\n\r\n${body}` };
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new NotFound(`no route for ${req.method} ${req.path}`));
};

/** Writes `err` as problem+json (or a 500 without internals), logs it and counts the rejection by reason. */
export function sendProblem(err: unknown, req: Request, res: Response, logger: Logger, metrics: Pick<Metrics, 'recordRejection'>, limits?: UploadLimitsNamed): void {
  const log = (res.locals.log as Logger | undefined) ?? logger;
  // A late failure of a request already answered (e.g. after its timeout) or whose client has gone: nothing more to
  // say to anyone.
  if (res.writableEnded || req.socket.destroyed) {
    log.debug({ err }, 'failure after the response was sent');
    return;
  }
  const known = toAppError(err, req.path, { contentType: req.headers['content-type'], limits });
  const body: Record<string, unknown> = known
    ? problemBody(known)
    : { type: 'about:blank', title: 'Internal Server Error', status: 500, detail: 'an unexpected error occurred; see the server log with this request id' };
  if (known) log.info({ status: known.status, problem: known.slug, detail: known.message }, 'request refused');
  else log.error({ err }, 'unhandled error');
  metrics.recordRejection(known?.slug ?? 'internal');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  body.instance = req.originalUrl.split('?')[0];
  if (known?.retryAfter !== undefined) res.setHeader('Retry-After', String(known.retryAfter));
  for (const [name, value] of Object.entries(known?.headers ?? {})) res.setHeader(name, value);
  res.status(body.status as number).type('application/problem+json').json(body);
}

export function problemHandler(logger: Logger, metrics: Pick<Metrics, 'recordRejection'>, limits?: UploadLimitsNamed): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => sendProblem(err, req, res, logger, metrics, limits);
}
