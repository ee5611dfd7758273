// openapi.yaml is the contract: the generated types must be current, and the served document must be the file.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import request from 'supertest';
import type { Response } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './fixtures/tiny-model.js';
import { expectContract } from './http/contract.js';

describe('src/http/api.gen.ts', () => {
  it('is what `npm run gen:api` generates from openapi.yaml today', () => {
    // The CLI writes to stdout without -o; same generator, options and header as the gen:api script.
    const fresh = execFileSync(process.execPath, ['node_modules/openapi-typescript/bin/cli.js', 'openapi.yaml'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(readFileSync('src/http/api.gen.ts', 'utf8'), 'api.gen.ts is stale: run `npm run gen:api`').toBe(fresh);
  });
});

describe('expectContract', () => {
  it('rejects a body the contract does not allow', () => {
    const fake = { status: 200, headers: { 'content-type': 'application/json' }, body: { results: [{ label: 'x' }] } } as unknown as Response;
    expect(() => expectContract('POST', '/v1/predict', fake)).toThrow(/breaks the contract/);
  });

  it('rejects a status the contract does not declare', () => {
    const fake = { status: 418, headers: { 'content-type': 'application/json' }, body: {} } as unknown as Response;
    expect(() => expectContract('GET', '/v1/models', fake)).toThrow(/declares no 418/);
  });
});

describe('GET /openapi.yaml', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('serves the contract file as YAML', async () => {
    const res = await request(t.app).get('/openapi.yaml');
    expect(res.status).toBe(200);
    expectContract('GET', '/openapi.yaml', res);
    expect(res.text).toBe(readFileSync('openapi.yaml', 'utf8'));
  });
});
