// The image routes' own intake (POST /v1/predict, /v1/audit), ahead of Express routing and the generic validator:
// validators compiled once from openapi.yaml's operations (parameters and request body, the same schemas, with ajv set
// up as the validator sets it up), multer with the same limits, and the validator's public error classes, so the hot routes answer as the contract says without its
// per-request route lookup. Anything it does not take whole (another content type, query parameters that would fail)
// goes on to the validator.
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type FormatDefinition, type ValidateFunction } from 'ajv/dist/2020.js';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { error as validatorErrors } from 'express-openapi-validator';
import multer from 'multer';
import { parse } from 'yaml';
import type { Config } from '../config.js';
import { uploadLimits } from './upload.js';

const always = () => true;
const within = (i: number, min: number, max: number) => Number.isInteger(i) && i <= max && i >= min;
const FLOAT_MAX = (2 - 2 ** -23) * 2 ** 127;
const FLOAT_MIN_POSITIVE = 2 ** -126;

/** OpenAPI's own formats as express-openapi-validator 5.6 defines them for its request ajv (framework/ajv/formats). */
const OPENAPI_FORMATS: Record<string, FormatDefinition<number> | FormatDefinition<string> | ((s: string) => boolean)> = {
  int32: { type: 'number', validate: (i: number) => within(i, (-2) ** 31, 2 ** 31 - 1) },
  int64: { type: 'number', validate: (i: number) => within(i, (-2) ** 63, 2 ** 63 - 1) },
  float: { type: 'number', validate: (i: number) => typeof i === 'number' && (i === 0 || (i <= FLOAT_MAX && i >= FLOAT_MIN_POSITIVE) || (i >= -FLOAT_MAX && i <= -FLOAT_MIN_POSITIVE)) },
  double: { type: 'number', validate: (i: number) => typeof i === 'number' },
  byte: (b: string) => b.length % 4 === 0 && /^[A-Za-z0-9+/]*(=|==)?$/.test(b),
  binary: always,
  password: always,
};

/**
 * The ajv the validator builds to check an OpenAPI 3.1 document's requests (createRequestAjv with the options its
 * middleware passes, validateRequests: true), built here from ajv's public API so that no private module of the
 * validator is needed: ajv's draft 2020-12 class, the same options and formats, and components.schemas registered
 * under the same keys. (Its serdes keywords and its readOnly rule act only on schemas these routes do not have; the
 * start-up checks below hold that.)
 */
function requestAjv(spec: Spec): Ajv2020 {
  if (!/^3\.1\./.test(spec.openapi)) throw new Error(`openapi.yaml is OpenAPI ${spec.openapi}; the validator checks 3.1 documents with ajv's draft 2020-12 class, which this intake mirrors`);
  const ajv = new Ajv2020({
    strict: false,
    strictNumbers: true,
    strictTuples: true,
    allowUnionTypes: false,
    validateSchema: false,
    useDefaults: true,
    removeAdditional: false,
    formats: OPENAPI_FORMATS,
  });
  // OpenAPI 3.1's meta-schema format; the validator accepts any string for it.
  ajv.addFormat('media-range', true);
  for (const [id, schema] of Object.entries(spec.components.schemas)) ajv.addSchema(schema as object, `#/components/schemas/${id}`);
  return ajv;
}

/**
 * ajv's errors → the validator's 400 for them (middlewares/util.js: augmentAjvErrors, which adds an enum's values to
 * its message in place before the message is written, then ajvErrorsToValidatorError).
 */
function validationError(ajv: Ajv2020, path: string, errors: ErrorObject[]): Error {
  for (const e of errors) {
    const allowed = (e.params as { allowedValues?: unknown[] }).allowedValues;
    if (e.keyword === 'enum' && allowed) e.message = `${e.message}: ${allowed.join(', ')}`;
  }
  return new validatorErrors.BadRequest({
    path,
    message: ajv.errorsText(errors, { dataVar: 'request' }),
    errors: errors.map((e) => {
      const params = e.params as { missingProperty?: string; additionalProperty?: string; unevaluatedProperty?: string };
      const under = (name: string | undefined) => name && `${e.instancePath}/${name}`;
      const path = under(params.missingProperty) ?? under(params.additionalProperty) ?? under(params.unevaluatedProperty) ?? e.instancePath;
      // ajv writes a message on every error (its messages option is on).
      return { path, message: e.message as string, errorCode: `${e.keyword}.openapi.validation` };
    }),
  });
}

/** The schemas `schema` reaches through components.schemas refs, itself included. */
function reachable(schema: unknown, components: Spec['components'], seen = new Set<unknown>()): Set<unknown> {
  if (typeof schema !== 'object' || schema === null || seen.has(schema)) return seen;
  seen.add(schema);
  const ref = (schema as { $ref?: unknown }).$ref;
  if (typeof ref === 'string') reachable(components.schemas[ref.split('/').pop() as string], components, seen);
  for (const value of Object.values(schema)) reachable(value, components, seen);
  return seen;
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
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { parameters: Record<string, Parameter>; schemas: Record<string, unknown> };
}

const MULTIPART = 'multipart/form-data';
/** What a client library sends; other spellings (and other types) take the validator's path, which answers them. */
const MULTIPART_HEADER = /^multipart\/form-data;\s*boundary=/;

/** Busboy/multer failure → the validator's error for it (openapi.multipart.js), which problem.ts maps. */
function multipartError(req: Request, err: Error & { code?: string }): Error {
  const at = { path: req.path, message: err.message };
  if (err instanceof multer.MulterError) {
    // HttpError.create's choice of class for the status the validator gives each multer code.
    if (/LIMIT_(FILE|PART)_(SIZE|COUNT)/.test(err.code)) return new validatorErrors.RequestEntityTooLarge(at);
    return /LIMIT_UNEXPECTED_FILE/.test(err.code) ? new validatorErrors.InternalServerError(at) : new validatorErrors.BadRequest(at);
  }
  if (/Multipart: Boundary not found/i.test(err.message)) return new validatorErrors.BadRequest({ path: req.path, message: 'multipart file(s) required' });
  return new validatorErrors.InternalServerError(at);
}

type Handler = (req: Request, res: Response) => Promise<void>;

interface Route {
  queryOk: ValidateFunction;
  bodyOk: ValidateFunction;
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
  const spec = parse(readFileSync(apiSpecPath, 'utf8')) as Spec;
  const ajv = requestAjv(spec);
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
    const schemas = reachable([bodySchema, ...parameters.map((p) => p.schema)], spec.components);
    if ([...schemas].some((sch) => (sch as { readOnly?: unknown }).readOnly === true)) throw new Error(`POST ${path}: a readOnly schema, which the validator refuses in requests by a rule of its own; not handled here`);
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

  const checkBody = (req: Request, bodyOk: ValidateFunction): void => {
    const files = (req.files ?? []) as Express.Multer.File[];
    const body = (req.body ?? {}) as Record<string, unknown>;
    const counts = new Map<string, number>();
    for (const f of files) counts.set(f.fieldname, (counts.get(f.fieldname) ?? 0) + 1);
    for (const [name, n] of counts) body[name] = n > 1 ? new Array<string>(n).fill('') : '';
    req.body = body;
    if (bodyOk({ body })) return;
    throw validationError(ajv, req.path, bodyOk.errors ?? []);
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
      if (err) return next(multipartError(req, err as Error));
      try {
        checkBody(req, route.bodyOk);
      } catch (e) {
        return next(e);
      }
      route.handler(req, res).catch(next);
    });
  };
}
