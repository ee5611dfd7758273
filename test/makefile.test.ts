// The Makefile as a newcomer meets it: `make help` lists every phony target with its description in one column, each
// target it or the docs name exists, and .PHONY names only targets that have a rule.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const makefile = readFileSync('Makefile', 'utf8');

/** Targets with a rule: `name: ...` at a line start, not a variable (`:=`, `::=`) or a recipe line. */
const ruleTargets = new Set(
  makefile
    .split('\n')
    .map((line) => /^([A-Za-z0-9_.\/$()-][^:=#\t]*?)\s*:(?![:=])/.exec(line)?.[1])
    .flatMap((targets) => (targets ? targets.split(/\s+/) : [])),
);

const phony = (/^\.PHONY:(.*)$/m.exec(makefile)?.[1] ?? '').trim().split(/\s+/);

/** `make help`, run as a user runs it: outside any make that may be running this test (no "Entering directory"). */
function makeHelp(): string {
  const env = { ...process.env };
  delete env.MAKEFLAGS;
  delete env.MAKELEVEL;
  delete env.MFLAGS;
  return execFileSync('make', ['--no-print-directory', 'help'], { env, encoding: 'utf8' });
}

/** `make <target>` inside code (inline spans and fenced blocks) of a Markdown file; prose like "make the" is not code. */
function makeTargetsIn(markdown: string): string[] {
  const code = [...markdown.matchAll(/```[^\n]*\n([\s\S]*?)```|`([^`\n]+)`/g)].map((m) => m[1] ?? m[2] ?? '');
  return code.flatMap((c) => [...c.matchAll(/(?:^|[\s;&|(])make ([a-z][\w-]*)/gm)].map((m) => m[1] as string));
}

describe('make help', () => {
  const lines = makeHelp().trimEnd().split('\n');
  const entries = lines.map((line) => /^ {2}make (\S+)( +)(\S.*)$/.exec(line));

  it('prints one "make <target>  <description>" line per target, descriptions in one column', () => {
    expect(entries.every((e) => e !== null)).toBe(true);
    const columns = new Set(entries.map((e) => (e ? e[0].length - (e[3] as string).length : -1)));
    expect(columns.size).toBe(1);
  });

  it('names only targets that have a rule', () => {
    const named = entries.map((e) => e?.[1]);
    expect(named.filter((t) => !t || !ruleTargets.has(t))).toEqual([]);
  });

  it('lists every phony target', () => {
    const named = new Set(entries.map((e) => e?.[1]));
    expect(phony.filter((t) => !named.has(t))).toEqual([]);
  });
});

describe('.PHONY', () => {
  it('names only targets that have a rule', () => {
    expect(phony.length).toBeGreaterThan(5);
    expect(phony.filter((t) => !ruleTargets.has(t))).toEqual([]);
  });
});

describe('make clean', () => {
  it('removes every virtualenv the Makefile creates', () => {
    const venvs = [...makefile.matchAll(/^(\w*VENV) :=/gm)].map((m) => `$(${m[1]})`);
    const recipe = /^clean:.*\n((?:\t.*\n)+)/m.exec(makefile)?.[1] ?? '';
    expect(venvs.length).toBeGreaterThanOrEqual(4);
    expect(venvs.filter((v) => !recipe.includes(v))).toEqual([]);
  });
});

describe('make targets named in the docs', () => {
  const files = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

  it.each(files)('%s names only targets the Makefile has', (file) => {
    const named = makeTargetsIn(readFileSync(file, 'utf8'));
    expect(named.filter((t) => !ruleTargets.has(t))).toEqual([]);
  });

  it('finds the targets the README names (the extraction works)', () => {
    expect(makeTargetsIn(readFileSync('README.md', 'utf8'))).toEqual(expect.arrayContaining(['serve', 'test', 'help']));
  });
});
