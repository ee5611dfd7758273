// Aggregates over the stored audits (filtered like the list): per submitted class and per annotator, counts by
// verdict and the estimated noise rate; the submitted x predicted confusion.
import { whereClause, type AuditFilters } from './query.js';
import type { Verdict } from './judge.js';
import type { Sql } from './sql.js';

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

/** PostgreSQL answers COUNT(*) as a bigint string; SQLite as a number. */
const groupRow = (r: Record<string, unknown>): GroupRow => ({ key: String(r.key), verdict: r.verdict as Verdict, n: Number(r.n), p: Number(r.p) });

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
export async function summarise(db: Sql, filters: AuditFilters, classOrder: readonly string[] = []): Promise<AuditSummary> {
  const { sql, params } = whereClause(filters);
  const byGroup = async (column: string, extra: string) =>
    (await db.all(`SELECT ${column} AS key, verdict, COUNT(*) AS n, SUM(label_probability) AS p FROM audits ${sql}${extra} GROUP BY ${column}, verdict`, params)).map(groupRow);
  const classes = groups(await byGroup('label', ''));
  const annotators = groups(await byGroup('annotator_id', `${sql ? ' AND' : ' WHERE'} annotator_id IS NOT NULL`));
  const pairs = (await db.all(`SELECT label, predicted, COUNT(*) AS n FROM audits ${sql} GROUP BY label, predicted`, params)).map((r) => ({
    label: String(r.label),
    predicted: String(r.predicted),
    n: Number(r.n),
  }));

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
