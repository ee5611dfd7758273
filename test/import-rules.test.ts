// The layering style.md asks for, checked on every run instead of left to review.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const files = (readdirSync('src', { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => path.join('src', f));
const importers = (pattern: RegExp) => files.filter((f) => pattern.test(readFileSync(f, 'utf8'))).sort();

describe('import rules', () => {
  it('only src/http/ imports express, multer or the validator', () => {
    expect(importers(/from '(express|multer|express-openapi-validator)'/).filter((f) => !f.startsWith('src/http/'))).toEqual([]);
  });

  it('only src/onnx/ imports onnxruntime-node', () => {
    expect(importers(/from 'onnxruntime-node'/).filter((f) => !f.startsWith('src/onnx/'))).toEqual([]);
    expect(importers(/from 'onnxruntime-node'/)).toEqual(['src/onnx/providers.ts', 'src/onnx/worker.ts']);
  });

  it('only config.ts reads process.env', () => {
    expect(importers(/process\.env/)).toEqual(['src/config.ts']);
  });

  it('only src/http/, config.ts and service.ts read ASM_FER_* config fields (service.ts maps them to module options)', () => {
    expect(importers(/\.ASM_FER_[A-Z_]+/).filter((f) => !f.startsWith('src/http/'))).toEqual(['src/config.ts', 'src/service.ts']);
  });

  it('only main.ts and service.ts import from src/http/: the request path never goes back to it', () => {
    expect(importers(/from '\.\.?\/http\//)).toEqual(['src/main.ts', 'src/service.ts']);
  });

  it('only the SQLite backends (of the trail and of the Label Studio queue) import better-sqlite3, only the PostgreSQL backend imports pg', () => {
    expect(importers(/from 'better-sqlite3'/)).toEqual(['src/audit/sqlite-store.ts', 'src/label-studio/queue-sqlite.ts']);
    expect(importers(/from 'pg'/)).toEqual(['src/audit/postgres-store.ts']);
  });

  it('only decode.ts imports sharp', () => {
    expect(importers(/from 'sharp'/)).toEqual(['src/image/decode.ts']);
  });
});
