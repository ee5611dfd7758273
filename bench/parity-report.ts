// Prints, per parity case, how far the service's tensor is from the one Python computed (docs/results.md).
// Usage: npx tsx bench/parity-report.ts [parity dir, default test/fixtures/generated/parity]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { InputSpec } from '../src/bundle/load-bundle.js';
import { decodeImage } from '../src/image/decode.js';
import { preprocess } from '../src/inference/preprocess.js';

interface ParityCase {
  file: string;
  tensor: number[];
  tolerance: { maxAbs: number; meanAbs: number };
}

const dir = process.argv[2] ?? 'test/fixtures/generated/parity';
const parity = JSON.parse(readFileSync(path.join(dir, 'parity.json'), 'utf8')) as { input: InputSpec; cases: ParityCase[] };
const { width, height } = parity.input;
console.log('| case | max abs diff | mean abs diff | allowed max / mean |\n|---|---|---|---|');
for (const c of parity.cases) {
  const img = await decodeImage(readFileSync(path.join(dir, c.file)), { width, height, maxPixels: 40_000_000 });
  const out = preprocess(img, parity.input);
  let max = 0;
  let sum = 0;
  out.forEach((v, i) => {
    const d = Math.abs(v - (c.tensor[i] as number));
    max = Math.max(max, d);
    sum += d;
  });
  console.log(`| ${c.file} | ${max.toExponential(1)} | ${(sum / out.length).toExponential(1)} | ${c.tolerance.maxAbs} / ${c.tolerance.meanAbs} |`);
}
