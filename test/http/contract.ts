// Validates response bodies against openapi.yaml, so HTTP tests check the contract and not only a few fields.
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { Response } from 'supertest';
import { parse } from 'yaml';

const doc = parse(readFileSync('openapi.yaml', 'utf8')) as Record<string, unknown>;
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addFormat('uri', (s: string) => /^[a-z][a-z0-9+.-]*:/i.test(s));
ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)));
ajv.addFormat('binary', () => true);
ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
ajv.addSchema({ ...doc, $id: 'openapi' });

const ptr = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** Throws unless the response's status, media type and body are what openapi.yaml says for method + path. */
export function expectContract(method: string, path: string, res: Pick<Response, 'status' | 'headers' | 'body' | 'text'>): void {
  const op = (doc.paths as Record<string, Record<string, { responses: Record<string, { $ref?: string; content?: Record<string, unknown> }> }>>)[path]?.[method.toLowerCase()];
  if (!op) throw new Error(`openapi.yaml has no ${method} ${path}`);
  let response = op.responses[String(res.status)];
  if (!response) throw new Error(`openapi.yaml declares no ${res.status} for ${method} ${path}`);
  let base = `openapi#/paths/${ptr(path)}/${method.toLowerCase()}/responses/${res.status}`;
  if (response.$ref) {
    base = `openapi${response.$ref}`;
    const name = response.$ref.split('/').pop() as string;
    response = ((doc.components as Record<string, Record<string, unknown>>).responses as Record<string, typeof response>)[name] as typeof response;
  }
  const mediaType = String(res.headers['content-type'] ?? '').split(';')[0] as string;
  if (!response.content || !(mediaType in response.content)) {
    throw new Error(`${method} ${path} ${res.status} returned ${mediaType}, the contract allows ${Object.keys(response.content ?? {}).join(', ')}`);
  }
  const validate = ajv.getSchema(`${base}/content/${ptr(mediaType)}/schema`);
  if (!validate) throw new Error(`no schema at ${base} for ${mediaType}`);
  const text = typeof res.text === 'string' ? res.text : String(res.body);
  // JSON and YAML bodies are checked as the documents they encode (as schemathesis does), anything else as text.
  const body: unknown = /^application\/([a-z.-]+\+)?json$/.test(mediaType) ? res.body : mediaType === 'application/yaml' ? parse(text) : text;
  if (!validate(body)) throw new Error(`${method} ${path} ${res.status} body breaks the contract: ${ajv.errorsText(validate.errors)}`);
}
