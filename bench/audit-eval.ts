// E4 (../shared/spec/evaluation.md): audit labels the model has never seen, against the running service.
// Each image of a FER+ split is sent to POST /v1/audit with ONE annotator's vote (seeded draw among its emotion
// votes); truth: the vote is mislabelled when it is not among the image's majority class(es). Prints the
// verdict x truth table, precision/recall/F1 of `noisy`, the mean majority share per verdict, and the same metrics
// for baseline rules computed from the same returned probabilities (argmax != label, Confident Learning's
// per-class rule with t_j = the bundle's classMeans, fixed [0.2, 0.8]).
//
// Usage: npx tsx bench/audit-eval.ts --data ../shared/data/ferplus [--split FER2013Valid] [--url http://localhost:8080]
//        [--bundle models/default] [--seeds 0,1,2] [--batch 32]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type FerItem, readFerSplit, rng } from './ferplus-split.js';


type Verdict = 'clean' | 'ambiguous' | 'noisy';
interface Scored {
  label: number;
  mislabelled: boolean;
  verdict: Verdict;
  probs: number[];
  share: number;
}

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    split: { type: 'string', default: 'FER2013Valid' },
    url: { type: 'string', default: 'http://localhost:8080' },
    bundle: { type: 'string', default: 'models/default' },
    seeds: { type: 'string', default: '0,1,2' },
    batch: { type: 'string', default: '32' },
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

async function audit(items: FerItem[], labels: number[], classes: string[]): Promise<{ verdict: Verdict; probs: number[] }[]> {
  const out: { verdict: Verdict; probs: number[] }[] = [];
  const batch = Number(args.batch);
  for (let i = 0; i < items.length; i += batch) {
    const form = new FormData();
    items.slice(i, i + batch).forEach((item, j) => {
      form.append('image', new Blob([readFileSync(item.file)], { type: 'image/png' }), path.basename(item.file));
      form.append('label', classes[labels[i + j] as number] as string);
    });
    const res = await fetch(`${args.url}/v1/audit`, { method: 'POST', body: form });
    if (!res.ok) throw new Error(`audit answered ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { results: { verdict: Verdict; probabilities: Record<string, number> }[] };
    for (const r of body.results) out.push({ verdict: r.verdict, probs: classes.map((c) => r.probabilities[c] as number) });
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

for (const seed of args.seeds.split(',').map(Number)) {
  const next = rng(seed);
  const labels = items.map((it) => drawVote(it.votes, next));
  const scored: Scored[] = (await audit(items, labels, classes)).map((r, i) => ({
    label: labels[i] as number,
    mislabelled: !(items[i] as FerItem).majority.has(labels[i] as number),
    verdict: r.verdict,
    probs: r.probs,
    share: (items[i] as FerItem).share,
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
  console.log();
}
console.log('## mean F1 over seeds\n\n| rule | F1 |\n|---|---|');
for (const [name, f1s] of Object.entries(summary)) console.log(`| ${name} | ${fmt(f1s.reduce((a, b) => a + b, 0) / f1s.length)} |`);
