// GET /v1/audits (filtered, paginated; JSON, CSV or JSON Lines) · GET /v1/audits/summary · GET /v1/audits/{id}
// · GET /v1/audits/{id}/image: reads of the audit trail.
import { Router, type Request } from 'express';
import { toCsv, toJsonl } from '../audit/export.js';
import { decodeCursor, type AuditFilters, type AuditSort } from '../audit/query.js';
import type { Verdict } from '../audit/judge.js';
import { BadRequest, NotFound } from '../errors.js';
import { sniffFormat } from '../image/decode.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './deps.js';

type AuditList = components['schemas']['AuditList'];
type AuditRecord = components['schemas']['AuditRecord'];
type AuditSummary = components['schemas']['AuditSummary'];

/** A query parameter as one string (the contract allows each filter once, except verdict). */
function one(req: Request, name: string): string | undefined {
  const v: unknown = (req.query as Record<string, unknown>)[name];
  return v === undefined ? undefined : String(Array.isArray(v) ? v[0] : v);
}

function time(req: Request, name: string): Date | undefined {
  const text = one(req, name);
  if (text === undefined) return undefined;
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw new BadRequest(`${name} ${JSON.stringify(text)} is not an RFC 3339 date-time`);
  return d;
}

/** The filters shared by the list and the summary; the validator has already checked their shapes. */
function filtersOf(req: Request): AuditFilters {
  const raw: unknown = (req.query as Record<string, unknown>).verdict;
  const verdict = raw === undefined ? undefined : ((Array.isArray(raw) ? raw : [raw]).flatMap((v) => String(v).split(',')) as Verdict[]);
  const from = time(req, 'from');
  const to = time(req, 'to');
  // An empty or inverted range is a client's mistake (often swapped bounds), not a question whose answer is "none".
  if (from && to && from >= to) throw new BadRequest(`from ${from.toISOString()} is not before to ${to.toISOString()}; to is exclusive`);
  return {
    verdict,
    label: one(req, 'label'),
    predicted: one(req, 'predicted'),
    annotatorId: one(req, 'annotatorId'),
    datasetId: one(req, 'datasetId'),
    modelVersion: one(req, 'modelVersion'),
    from,
    to,
    maxQuality: number(req, 'maxQuality'),
    minMistakenness: number(req, 'minMistakenness'),
    current: flag(req, 'current'),
  };
}

/** A boolean the validator has already checked; undefined when absent. */
function flag(req: Request, name: string): boolean | undefined {
  const text = one(req, name);
  return text === undefined ? undefined : text === 'true';
}

/** A number the validator has already checked (and coerced); undefined when absent. */
function number(req: Request, name: string): number | undefined {
  const text = one(req, name);
  return text === undefined ? undefined : Number(text);
}

/** The request's own URL with `cursor` replaced, for the Link header. */
function nextLink(req: Request, cursor: string): string {
  const url = new URL(req.originalUrl, 'http://placeholder');
  url.searchParams.set('cursor', cursor);
  return `<${url.pathname}${url.search}>; rel="next"`;
}

export function auditTrailRouter(deps: HttpDeps): Router {
  const { trail, host } = deps;
  const router = Router();

  router.get('/v1/audits', async (req, res) => {
    const cursor = one(req, 'cursor');
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    if (cursor !== undefined && after === undefined) throw new BadRequest('cursor is not one this service returned; pass nextCursor from the previous page');
    // No default in openapi.yaml: a cursor alone continues in its own sort.
    const sort = (one(req, 'sort') as AuditSort | undefined) ?? after?.sort ?? 'time';
    if (after !== undefined && after.sort !== sort) {
      throw new BadRequest(`cursor continues a sort=${after.sort} listing, not sort=${sort}; send the same sort as the page it came from, or no sort`);
    }
    // limit and format always arrive: the validator fills in openapi.yaml's defaults.
    // List only: the summary counts withdrawn records as the audited traffic they were (docs/api.md, "Audit trail").
    const filters = { ...filtersOf(req), withdrawn: flag(req, 'withdrawn') };
    const page = await trail.store.list(filters, { limit: Number(one(req, 'limit')), sort, after });
    if (page.nextCursor !== null) res.setHeader('Link', nextLink(req, page.nextCursor));
    const format = one(req, 'format');
    if (format === 'json') {
      const body: AuditList = page;
      res.json(body);
      return;
    }
    if (page.nextCursor !== null) res.setHeader('X-Next-Cursor', page.nextCursor);
    if (format === 'csv') res.type('text/csv; charset=utf-8').send(toCsv(page.items));
    else res.type('application/x-ndjson; charset=utf-8').send(toJsonl(page.items));
  });

  router.get('/v1/audits/summary', async (req, res) => {
    const body: AuditSummary = await trail.summary(host.current.manifest, filtersOf(req));
    res.json(body);
  });

  router.get('/v1/audits/:id', async (req, res) => {
    const record = await trail.store.get(String(req.params.id));
    if (!record) throw new NotFound(`no audit record ${req.params.id}`);
    const body: AuditRecord = record;
    res.json(body);
  });

  router.get('/v1/audits/:id/image', async (req, res) => {
    const image = await trail.store.image(String(req.params.id));
    if (image === undefined) throw new NotFound(`no audit record ${req.params.id}`);
    if (image === null) throw new NotFound(`the image of audit record ${req.params.id} was not kept (ASM_FER_AUDIT_STORE_IMAGES was off)`);
    const format = sniffFormat(image);
    res.type(format ? `image/${format}` : 'application/octet-stream').send(image);
  });
  return router;
}
