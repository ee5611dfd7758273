// The image routes' own intake (POST /v1/predict, /v1/audit), ahead of Express routing and the generic validator:
// validators compiled once from openapi.yaml's operations (parameters and request body, the same schemas), multer with
// the same limits, and the validator's own error values, so the hot routes answer as the contract says without its
// per-request route lookup. Anything it does not take whole (another content type, query parameters that would fail)
// goes on to the validator.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import multer from 'multer';
import { parse } from 'yaml';
import type { Config } from '../config.js';
import { uploadLimits } from './upload.js';

/** The parts of express-openapi-validator this intake reuses, so its answers are the validator's own. */
interface ValidatorInternals {
  createRequestAjv(spec: unknown, options: Record<string, unknown>): AjvLike;
  augmentAjvErrors(errors: unknown[]): AjvError[];
  ajvErrorsToValidatorError(status: number, errors: AjvError[]): { errors: unknown[] };
  HttpError: { create(err: { status: number; path: string; message: string }): Error & { errors: unknown[] } };
  BadRequest: new (err: { path: string; message: string }) => Error & { errors: unknown[] };
  InternalServerError: new (err: { path: string; message: string }) => Error;
}
interface AjvError {
  instancePath: string;
  message?: string;
}
interface ValidateFn {
  (data: unknown): boolean;
  errors?: AjvError[] | null;
}
interface AjvLike {
  compile(schema: unknown): ValidateFn;
  errorsText(errors: AjvError[], options: { dataVar: string }): string;
}

function validatorInternals(): ValidatorInternals {
  // The package has no exports map; these modules are what its middleware calls (5.6.x).
  const require = createRequire(import.meta.url);
  const base = 'express-openapi-validator/dist/';
  const ajv = require(`${base}framework/ajv/index.js`) as Pick<ValidatorInternals, 'createRequestAjv'>;
  const util = require(`${base}middlewares/util.js`) as Pick<ValidatorInternals, 'augmentAjvErrors' | 'ajvErrorsToValidatorError'>;
  const types = require(`${base}framework/types.js`) as Pick<ValidatorInternals, 'HttpError' | 'BadRequest' | 'InternalServerError'>;
  return { ...ajv, ...util, ...types };
}

interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  schema: unknown;
}
interface Operation {
  parameters?: ({ $ref: string } | Parameter)[];
  requestBody: { content: Record<string, { schema: unknown }> };
}
interface Spec {
  paths: Record<string, Record<string, Operation>>;
  components: { parameters: Record<string, Parameter>; schemas: Record<string, unknown> };
}

const MULTIPART = 'multipart/form-data';
/** What a client library sends; other spellings (and other types) take the validator's path, which answers them. */
const MULTIPART_HEADER = /^multipart\/form-data;\s*boundary=/;

/** Busboy/multer failure → the validator's error for it (openapi.multipart.js), which problem.ts maps. */
function multipartError(ev: ValidatorInternals, req: Request, err: Error & { code?: string }): Error {
  if (err instanceof multer.MulterError) {
    const status = /LIMIT_(FILE|PART)_(SIZE|COUNT)/.test(err.code) ? 413 : /LIMIT_UNEXPECTED_FILE/.test(err.code) ? 500 : 400;
    return ev.HttpError.create({ status, path: req.path, message: err.message });
  }
  if (/Multipart: Boundary not found/i.test(err.message)) return new ev.BadRequest({ path: req.path, message: 'multipart file(s) required' });
  return new ev.InternalServerError({ path: req.path, message: err.message });
}

type Handler = (req: Request, res: Response) => Promise<void>;

interface Route {
  queryOk: ValidateFn;
  bodyOk: ValidateFn;
  handler: Handler;
}

/**
 * Runs each route's handler for `POST <path>` requests it can check whole: a multipart body with a boundary and query
 * parameters that the operation's parameter schemas accept. The body is read by multer (limits as upload.ts) and
 * checked against the operation's multipart schema in the shape the validator checks it (each file part as ''), with
 * its ajv options. (No body property of these operations is a plain array or object, which the validator would first
 * JSON.parse; the start-up check below holds that.)
 */
export function imageRouteIntake(config: Config, apiSpecPath: string, handlers: Record<string, Handler>): RequestHandler {
  const ev = validatorInternals();
  const spec = parse(readFileSync(apiSpecPath, 'utf8')) as Spec;
  // express-openapi-validator's request options (AjvOptions.request with validateRequests: true).
  const ajv = ev.createRequestAjv(spec, {
    strict: false,
    strictNumbers: true,
    strictTuples: true,
    allowUnionTypes: false,
    validateSchema: false,
    useDefaults: true,
    removeAdditional: false,
    formats: {},
    serDesMap: {},
  });
  const routes = new Map<string, Route>();
  for (const [path, handler] of Object.entries(handlers)) {
    const operation = spec.paths[path]?.post;
    const bodySchema = operation?.requestBody.content[MULTIPART]?.schema as { $ref?: string } | undefined;
    if (!operation || !bodySchema) throw new Error(`openapi.yaml has no multipart POST ${path}`);
    const resolved = (bodySchema.$ref ? spec.components.schemas[bodySchema.$ref.split('/').pop() as string] : bodySchema) as { properties?: Record<string, { type?: unknown }> };
    const nested = Object.entries(resolved.properties ?? {}).filter(([, p]) => p.type === 'array' || p.type === 'object');
    if (nested.length > 0) throw new Error(`POST ${path}: body property ${nested[0]?.[0]} would be JSON-parsed by the validator; not handled here`);
    const parameters = (operation.parameters ?? []).map((p) => ('$ref' in p ? spec.components.parameters[p.$ref.split('/').pop() as string] : p) as Parameter);
    if (parameters.some((p) => p.in !== 'query')) throw new Error(`POST ${path}: only query parameters are checked here`);
    // No unknown, empty or repeated parameter: those are the validator's to refuse, with its wording.
    const queryOk = ajv.compile({
      type: 'object',
      additionalProperties: false,
      required: parameters.filter((p) => p.required).map((p) => p.name),
      properties: Object.fromEntries(parameters.map((p) => [p.name, { allOf: [{ type: 'string', minLength: 1 }, p.schema] }])),
      components: spec.components,
    });
    const bodyOk = ajv.compile({ components: spec.components, required: ['body'], properties: { body: bodySchema } });
    routes.set(path, { queryOk, bodyOk, handler });
  }
  const upload = multer({ storage: multer.memoryStorage(), limits: uploadLimits(config) }).any();

  const checkBody = (req: Request, bodyOk: ValidateFn): void => {
    const files = (req.files ?? []) as Express.Multer.File[];
    const body = (req.body ?? {}) as Record<string, unknown>;
    const counts = new Map<string, number>();
    for (const f of files) counts.set(f.fieldname, (counts.get(f.fieldname) ?? 0) + 1);
    for (const [name, n] of counts) body[name] = n > 1 ? new Array<string>(n).fill('') : '';
    req.body = body;
    if (bodyOk({ body })) return;
    const errors = ev.augmentAjvErrors(bodyOk.errors ?? []);
    const error = new ev.BadRequest({ path: req.path, message: ajv.errorsText(errors, { dataVar: 'request' }) });
    error.errors = ev.ajvErrorsToValidatorError(400, errors).errors;
    throw error;
  };

  return (req: Request, res: Response, next: NextFunction) => {
    const route = req.method === 'POST' ? routes.get(req.path) : undefined;
    if (!route || !MULTIPART_HEADER.test(req.headers['content-type'] ?? '')) return next();
    // Express 5 parses the query string on every read of req.query; parsed once here, it is kept for the handler.
    const query = req.query;
    if (!route.queryOk(query)) return next();
    Object.defineProperty(req, 'query', { value: query, writable: true, enumerable: true, configurable: true });
    res.locals.route = req.path;
    upload(req, res, (err?: unknown) => {
      if (err) return next(multipartError(ev, req, err as Error));
      try {
        checkBody(req, route.bodyOk);
      } catch (e) {
        return next(e);
      }
      route.handler(req, res).catch(next);
    });
  };
}
