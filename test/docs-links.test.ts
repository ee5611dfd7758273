// Every relative link of README.md and docs/*.md resolves: the file exists and, with a #fragment, so does the heading
// (GitHub's anchors). The README sends readers to docs/ for the reference, so a moved section must not leave a dead link.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const FILES = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** Markdown without code: fenced blocks and inline spans may hold brackets that are not links. */
const prose = (markdown: string) => markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');

/** GitHub's anchor of a heading: lower case, punctuation dropped, each space a hyphen; repeats get -1, -2, ... */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, text] of markdown.replace(/```[\s\S]*?```/g, '').matchAll(/^#{1,6} +(.+?) *#* *$/gm)) {
    const base = (text as string)
      .toLowerCase()
      .replace(/<[^>]+>/g, '')
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Relative link targets ([text](target) and ![alt](target)), without web or mail addresses. */
function relativeLinks(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(([^)\s]+)(?: "[^"]*")?\)/g)]
    .map((m) => m[1] as string)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

describe('links in README.md and docs/', () => {
  it.each(FILES)('%s: every relative link resolves', (file) => {
    const dead: string[] = [];
    for (const target of relativeLinks(readFileSync(file, 'utf8'))) {
      const [pathPart, fragment] = target.split('#', 2) as [string, string | undefined];
      const resolved = pathPart === '' ? file : path.join(path.dirname(file), decodeURIComponent(pathPart));
      if (!existsSync(resolved)) {
        dead.push(`${target} (no ${resolved})`);
        continue;
      }
      if (fragment !== undefined && statSync(resolved).isFile() && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(fragment)) {
        dead.push(`${target} (no heading #${fragment} in ${resolved})`);
      }
    }
    expect(dead).toEqual([]);
  });

  it('finds the links it checks (the extraction works)', () => {
    expect(relativeLinks(readFileSync('README.md', 'utf8'))).toEqual(expect.arrayContaining(['docs/api.md', 'docs/configuration.md#logs']));
  });

  it('makes anchors the way GitHub does', () => {
    expect([...anchors('## Issue 17 — verdicts on labels\n### GPU (opt-in)\n## Logs\n## Logs\n')]).toEqual(['issue-17--verdicts-on-labels', 'gpu-opt-in', 'logs', 'logs-1']);
  });
});
