// The layering style.md asks for, checked on every run instead of left to review.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const files = (readdirSync('src', { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => path.join('src', f));
const importers = (pattern: RegExp) => files.filter((f) => pattern.test(readFileSync(f, 'utf8'))).sort();

/**
 * Every module specifier of a file: static imports and re-exports (`import type` and `export type` included), side-effect
 * imports, dynamic import() and require() calls.
 */
function specifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?\sfrom\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of source.matchAll(pattern)) found.push(m[1] as string);
  return found;
}

/** src/ file → the src/ files it imports (relative specifiers, `./x.js` naming `./x.ts`). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const local = specifiers(readFileSync(f, 'utf8')).filter((s) => s.startsWith('.'));
    graph.set(f, [...new Set(local.map((s) => path.join(path.dirname(f), s).replace(/\.js$/, '.ts')))]);
  }
  return graph;
}

/** Each import circle as the path that closes it (a → ... → a), found by depth-first search; none is the goal. */
function cycles(graph: Map<string, string[]>): string[] {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const found: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const to of graph.get(f) ?? []) {
      if (state.get(to) === 'open') found.push([...stack.slice(stack.indexOf(to)), to].join(' → '));
      else if (!state.has(to)) visit(to);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  return found;
}

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

  it('only the SQLite backends (of the trail and of the Label Studio queue) import better-sqlite3, only the PostgreSQL backends (of the trail and of the queue) import pg', () => {
    expect(importers(/from 'better-sqlite3'/)).toEqual(['src/audit/sqlite-store.ts', 'src/label-studio/queue-sqlite.ts']);
    expect(importers(/from 'pg'/)).toEqual(['src/audit/postgres-store.ts', 'src/label-studio/queue-postgres.ts']);
  });

  it('only decode.ts imports sharp', () => {
    expect(importers(/from 'sharp'/)).toEqual(['src/image/decode.ts']);
  });

  it('sees every import form, type-only ones included, and resolves each relative one to a src/ file', () => {
    expect(specifiers("import type { A } from './a.js';\nimport {\n  b,\n  type C,\n} from '../c.js';\nexport type { D } from './d.js';\nimport './e.js';\nconst f = await import('./f.js');")).toEqual(['./a.js', '../c.js', './d.js', './e.js', './f.js']);
    const graph = importGraph();
    const unresolved = [...graph].flatMap(([f, to]) => to.filter((t) => !graph.has(t)).map((t) => `${f} → ${t}`));
    expect(unresolved).toEqual([]);
    expect(graph.get('src/audit/judge.ts')).toContain('src/faces/find-faces.ts');
  });

  it('every package src/ imports at run time is a production dependency (the image prunes devDependencies, issue 31)', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> };
    const offenders = files.flatMap((f) => {
      const source = readFileSync(f, 'utf8').replace(/^\s*(?:import|export)\s+type\s[^;]*;/gm, ''); // type-only: erased
      return specifiers(source)
        .filter((s) => !s.startsWith('.') && !s.startsWith('node:'))
        .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : (s.split('/')[0] as string)))
        .filter((name) => !(name in pkg.dependencies))
        .map((name) => `${f}: ${name}`);
    });
    expect(offenders).toEqual([]);
  });

  it('no src/ file imports one that imports it back, even through others and even for types only', () => {
    expect(cycles(importGraph())).toEqual([]);
  });

  it('no src/ file imports a package\'s private dist/ modules (ajv/dist/2020.js is ajv\'s documented draft 2020-12 class)', () => {
    const PUBLIC = new Set(['ajv/dist/2020.js']);
    const offenders = files.flatMap((f) => {
      const source = readFileSync(f, 'utf8');
      // Specifiers, and any string that names a dist/ path (a require built from a base string has no specifier to see).
      const named = [...specifiers(source).filter((s) => !s.startsWith('.')), ...[...source.matchAll(/['"`]([^'"`\s]*\/dist\/[^'"`\s]*)['"`]/g)].map((m) => m[1] as string)];
      return named.filter((s) => /(^|\/)dist\//.test(s) && !PUBLIC.has(s)).map((s) => `${f}: ${s}`);
    });
    expect(offenders).toEqual([]);
  });
});
