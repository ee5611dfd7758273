// Aggregates over the stored audits (filtered like the list): per submitted class and per annotator, counts by
// verdict and the estimated noise rate; the submitted x predicted confusion.
import type Database from 'better-sqlite3';
import { whereClause, type AuditFilters } from './query.js';
import type { Verdict } from './judge.js';

export type VerdictCounts = Record<Verdict, number>;

export interface GroupStats {
  count: number;
  verdicts: VerdictCounts;
  /** Share of items whose verdict is noisy: ASM's estimate of the wrong labels in this group. */
  noiseRate: number;
  /** Mean probability the model gave the submitted label. */
  meanLabelProbability: number;
}

export interface AuditSummary {
  total: number;
  classes: (GroupStats & { label: string })[];
  annotators: (GroupStats & { annotatorId: string })[];
  /** counts[i][j]: items submitted as labels[i] and predicted as labels[j]. */
  confusion: { labels: string[]; counts: number[][] };
}

interface GroupRow {
  key: string;
  verdict: Verdict;
  n: number;
  p: number;
}

function groups(rows: GroupRow[]): Map<string, GroupStats> {
  const out = new Map<string, GroupStats & { sum: number }>();
  for (const r of rows) {
    let g = out.get(r.key);
    if (!g) {
      g = { count: 0, verdicts: { clean: 0, ambiguous: 0, noisy: 0 }, noiseRate: 0, meanLabelProbability: 0, sum: 0 };
      out.set(r.key, g);
    }
    g.count += r.n;
    g.verdicts[r.verdict] += r.n;
    g.sum += r.p;
  }
  return new Map(
    [...out].map(([k, { sum, ...g }]) => [k, { ...g, noiseRate: g.verdicts.noisy / g.count, meanLabelProbability: sum / g.count }]),
  );
}

/** `classOrder` (the served model's classes) orders labels; labels it lacks (older models) follow alphabetically. */
export function summarise(db: Database.Database, filters: AuditFilters, classOrder: readonly string[] = []): AuditSummary {
  const { sql, params } = whereClause(filters);
  const byGroup = (column: string, extra: string) =>
    db
      .prepare(`SELECT ${column} AS key, verdict, COUNT(*) AS n, SUM(label_probability) AS p FROM audits ${sql}${extra} GROUP BY ${column}, verdict`)
      .all(...params) as GroupRow[];
  const classes = groups(byGroup('label', ''));
  const annotators = groups(byGroup('annotator_id', `${sql ? ' AND' : ' WHERE'} annotator_id IS NOT NULL`));
  const pairs = db.prepare(`SELECT label, predicted, COUNT(*) AS n FROM audits ${sql} GROUP BY label, predicted`).all(...params) as {
    label: string;
    predicted: string;
    n: number;
  }[];

  const rank = (c: string) => {
    const i = classOrder.indexOf(c);
    return i === -1 ? classOrder.length : i;
  };
  const order = (a: string, b: string) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
  const labels = [...new Set(pairs.flatMap((p) => [p.label, p.predicted]))].sort(order);
  const index = new Map(labels.map((l, i) => [l, i]));
  const counts = labels.map(() => labels.map(() => 0));
  for (const p of pairs) (counts[index.get(p.label) as number] as number[])[index.get(p.predicted) as number] = p.n;

  let total = 0;
  for (const g of classes.values()) total += g.count;
  return {
    total,
    classes: [...classes].sort(([a], [b]) => order(a, b)).map(([label, g]) => ({ label, ...g })),
    annotators: [...annotators].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([annotatorId, g]) => ({ annotatorId, ...g })),
    confusion: { labels, counts },
  };
}
