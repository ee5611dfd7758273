// E4 (../shared/spec/evaluation.md): audit labels the model has never seen, against the running service.
// Each image of a FER+ split is sent to POST /v1/audit with ONE annotator's vote (seeded draw among its emotion
// votes); truth: the vote is mislabelled when it is not among the image's majority class(es). Prints the
// verdict x truth table, precision/recall/F1 of `noisy`, the mean majority share per verdict, and the same metrics
// for baseline rules computed from the same returned probabilities (argmax != label, Confident Learning's
// per-class rule with t_j = the bundle's classMeans, fixed [0.2, 0.8]). Then the real peer (issue 17): each seed's
// items go to `asm-fer peers` (training/asm_fer/audit/peers.py), which scores cleanlab's find_label_issues (default and
// confident_learning filters) and its label-quality scores at the verdict's budget on the same probabilities, every
// rule per submitted class, the average precision / AUROC of each ranking score (with the service's own `quality`
// field), and why the hand-written Confident Learning rule differs from cleanlab's.
//
// Usage: npx tsx bench/audit-eval.ts --data ../shared/data/ferplus [--split FER2013Valid] [--url http://localhost:8080]
//        [--bundle models/default] [--seeds 0,1,2] [--batch 32] [--peers training/.venv/bin/asm-fer] [--json out.json]
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { type FerItem, readFerSplit, rng } from './ferplus-split.js';


type Verdict = 'clean' | 'ambiguous' | 'noisy';
interface Scored {
  label: number;
  mislabelled: boolean;
  verdict: Verdict;
  probs: number[];
  share: number;
  quality: number | undefined;
}

interface PeerScores {
  rules: Record<string, { overall: { f1: number; precision: number; recall: number; flagged: number }; perClass: Record<string, { f1: number; flagged: number }> }>;
  rankings: Record<string, { averagePrecision: number; auroc: number }>;
  handVsCleanlab?: Record<string, number>;
}

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    split: { type: 'string', default: 'FER2013Valid' },
    url: { type: 'string', default: 'http://localhost:8080' },
    bundle: { type: 'string', default: 'models/default' },
    seeds: { type: 'string', default: '0,1,2' },
    batch: { type: 'string', default: '32' },
    peers: { type: 'string', default: 'training/.venv/bin/asm-fer' },
    json: { type: 'string' },
  },
});
if (!args.data) throw new Error('--data <FER+ root> is required');

function drawVote(votes: number[], next: () => number): number {
  let r = Math.floor(next() * votes.reduce((a, b) => a + b, 0));
  for (let k = 0; k < votes.length; k++) {
    r -= votes[k] as number;
    if (r < 0) return k;
  }
  throw new Error('no votes');
}

type Answer = { verdict: Verdict; probs: number[]; quality: number | undefined };
async function audit(items: FerItem[], labels: number[], classes: string[]): Promise<Answer[]> {
  const out: Answer[] = [];
  const batch = Number(args.batch);
  for (let i = 0; i < items.length; i += batch) {
    const form = new FormData();
    items.slice(i, i + batch).forEach((item, j) => {
      form.append('image', new Blob([readFileSync(item.file)], { type: 'image/png' }), path.basename(item.file));
      form.append('label', classes[labels[i + j] as number] as string);
    });
    const res = await fetch(`${args.url}/v1/audit`, { method: 'POST', body: form });
    if (!res.ok) throw new Error(`audit answered ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { results: { verdict: Verdict; probabilities: Record<string, number>; quality?: number }[] };
    for (const r of body.results) out.push({ verdict: r.verdict, probs: classes.map((c) => r.probabilities[c] as number), quality: r.quality });
  }
  return out;
}

function prf(flagged: boolean[], truth: boolean[]): { precision: number; recall: number; f1: number; flagged: number } {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  flagged.forEach((f, i) => {
    if (f && truth[i]) tp++;
    else if (f) fp++;
    else if (truth[i]) fn++;
  });
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return { precision, recall, f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0, flagged: tp + fp };
}

const fmt = (x: number) => x.toFixed(3);

const bundle = JSON.parse(readFileSync(path.join(args.bundle, 'model.json'), 'utf8')) as {
  name: string;
  version: string;
  classes: string[];
  thresholds: Record<string, { clean: number; noisy: number }>;
  thresholdLearning: { classMeans: Record<string, number> };
};
const classes = bundle.classes;
const served = (await (await fetch(`${args.url}/v1/models`)).json()) as { models: { name: string; version: string }[] };
if (served.models[0]?.version !== bundle.version) {
  throw new Error(`the service serves ${served.models[0]?.name}@${served.models[0]?.version}, --bundle is ${bundle.name}@${bundle.version}`);
}
const items = readFerSplit(args.data, args.split);
const clThreshold = classes.map((c) => bundle.thresholdLearning.classMeans[c] as number);
console.log(`# E4 on ${args.split}: ${items.length} images, model ${bundle.name}@${bundle.version}\n`);

const rules: Record<string, (s: Scored) => boolean> = {
  'ASM verdict (noisy)': (s) => s.verdict === 'noisy',
  'ASM verdict (noisy or ambiguous)': (s) => s.verdict !== 'clean',
  'argmax != label': (s) => s.probs.indexOf(Math.max(...s.probs)) !== s.label,
  'confident learning': (s) => s.probs.some((p, j) => j !== s.label && p >= (clThreshold[j] as number)),
  'fixed [0.2, 0.8] (noisy)': (s) => (s.probs[s.label] as number) < 0.2,
};
const summary: Record<string, number[]> = Object.fromEntries(Object.keys(rules).map((k) => [k, []]));
const rankingSummary: Record<string, { ap: number[]; auroc: number[] }> = {};
const perSeed: { seed: number; peers: PeerScores }[] = [];

/**
 * cleanlab and the per-class scores, in the training venv (cleanlab is a Python library). Run without blocking the
 * event loop: while a synchronous child ran (a minute), the service closed the idle kept-alive socket unseen, and the
 * next seed's first POST was written into it (EPIPE).
 */
async function peers(scored: Scored[]): Promise<PeerScores> {
  const dir = mkdtempSync(path.join(tmpdir(), 'audit-eval-'));
  try {
    const lines = scored.map((s) =>
      JSON.stringify({
        probs: s.probs,
        label: s.label,
        wrong: s.mislabelled,
        noisy: s.verdict === 'noisy',
        ...(s.quality === undefined ? {} : { quality: s.quality }),
        handCl: (rules['confident learning'] as (s: Scored) => boolean)(s),
        rules: Object.fromEntries(Object.entries(rules).filter(([n]) => n !== 'ASM verdict (noisy)' && n !== 'confident learning').map(([n, r]) => [n, r(s)])),
      }),
    );
    writeFileSync(path.join(dir, 'items.jsonl'), lines.join('\n') + '\n');
    try {
      await promisify(execFile)(args.peers as string, ['peers', '--in', path.join(dir, 'items.jsonl'), '--out', path.join(dir, 'scores.json'), '--classes', classes.join(',')], {
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      });
    } catch (err) {
      const e = err as { code?: number; stderr?: string; message: string };
      throw new Error(`${args.peers} peers failed (${e.code}): ${e.stderr || e.message}`);
    }
    return JSON.parse(readFileSync(path.join(dir, 'scores.json'), 'utf8')) as PeerScores;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const seed of args.seeds.split(',').map(Number)) {
  const next = rng(seed);
  const labels = items.map((it) => drawVote(it.votes, next));
  const scored: Scored[] = (await audit(items, labels, classes)).map((r, i) => ({
    label: labels[i] as number,
    mislabelled: !(items[i] as FerItem).majority.has(labels[i] as number),
    verdict: r.verdict,
    probs: r.probs,
    share: (items[i] as FerItem).share,
    quality: r.quality,
  }));
  const truth = scored.map((s) => s.mislabelled);
  console.log(`## seed ${seed}: ${truth.filter(Boolean).length} of ${scored.length} votes are not a majority class\n`);
  console.log('| verdict | mislabelled | correct | mean majority share |\n|---|---|---|---|');
  for (const v of ['clean', 'ambiguous', 'noisy'] as const) {
    const group = scored.filter((s) => s.verdict === v);
    const share = group.length ? group.reduce((a, s) => a + s.share, 0) / group.length : NaN;
    console.log(`| ${v} | ${group.filter((s) => s.mislabelled).length} | ${group.filter((s) => !s.mislabelled).length} | ${fmt(share)} |`);
  }
  console.log('\n| rule | flagged | precision | recall | F1 |\n|---|---|---|---|---|');
  for (const [name, rule] of Object.entries(rules)) {
    const m = prf(scored.map(rule), truth);
    summary[name]?.push(m.f1);
    console.log(`| ${name} | ${m.flagged} | ${fmt(m.precision)} | ${fmt(m.recall)} | ${fmt(m.f1)} |`);
  }
  const peer = await peers(scored);
  perSeed.push({ seed, peers: peer });
  for (const [name, r] of Object.entries(peer.rules)) {
    if (name.startsWith('cleanlab')) {
      (summary[name] ??= []).push(r.overall.f1);
      console.log(`| ${name} | ${r.overall.flagged} | ${fmt(r.overall.precision)} | ${fmt(r.overall.recall)} | ${fmt(r.overall.f1)} |`);
    }
  }
  console.log('\n| ranking (worst first) | average precision | AUROC |\n|---|---|---|');
  for (const [name, r] of Object.entries(peer.rankings)) {
    const acc = (rankingSummary[name] ??= { ap: [], auroc: [] });
    acc.ap.push(r.averagePrecision);
    acc.auroc.push(r.auroc);
    console.log(`| ${name} | ${fmt(r.averagePrecision)} | ${fmt(r.auroc)} |`);
  }
  const names = Object.keys(peer.rules);
  console.log(`\nF1 per submitted class:\n\n| rule | ${classes.join(' | ')} |\n|---|${classes.map(() => '---').join('|')}|`);
  for (const name of names) console.log(`| ${name} | ${classes.map((c) => fmt(peer.rules[name]?.perClass[c]?.f1 ?? NaN)).join(' | ')} |`);
  if (peer.handVsCleanlab) console.log(`\nhand-written CL rule vs cleanlab confident_learning: ${JSON.stringify(peer.handVsCleanlab)}`);
  console.log();
}
console.log('## mean F1 over seeds\n\n| rule | F1 |\n|---|---|');
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
for (const [name, f1s] of Object.entries(summary)) console.log(`| ${name} | ${fmt(mean(f1s))} |`);
console.log('\n## mean average precision / AUROC over seeds\n\n| ranking | AP | AUROC |\n|---|---|---|');
for (const [name, r] of Object.entries(rankingSummary)) console.log(`| ${name} | ${fmt(mean(r.ap))} | ${fmt(mean(r.auroc))} |`);
if (args.json) writeFileSync(args.json, JSON.stringify({ model: `${bundle.name}@${bundle.version}`, summary, rankingSummary, perSeed }, null, 1));
