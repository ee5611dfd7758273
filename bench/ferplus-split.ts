// FER+ label.csv for the benchmarks, read with the training side's rule, and the seeded generator they share.
import { readFileSync } from 'node:fs';
import path from 'node:path';

const EMOTIONS = 8; // FER+ vote columns 0-7 are the emotions, 8-9 unknown and NF

export interface FerItem {
  file: string;
  votes: number[]; // the 8 emotion counts
  /** The majority class index (ties: the first), the FER+ protocol's label. */
  label: number;
  majority: Set<number>; // classes with the top count
  share: number; // top count / emotion votes: how much the crowd agreed
}

/** label.csv rows with an emotion majority (unknown/NF majorities dropped), as the training side reads them. */
export function readFerSplit(root: string, split: string): FerItem[] {
  const text = readFileSync(path.join(root, split, 'label.csv'), 'utf8');
  const items: FerItem[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const m = /^([^,]+),"[^"]*",(.*)$/.exec(line.trim());
    if (!m) throw new Error(`${split}/label.csv: cannot parse ${JSON.stringify(line)}`);
    const counts = (m[2] as string).split(',').map(Number);
    const votes = counts.slice(0, EMOTIONS);
    const top = Math.max(...votes);
    if (top === 0 || top <= Math.max(...counts.slice(EMOTIONS))) continue;
    const total = votes.reduce((a, b) => a + b, 0);
    const majority = new Set(votes.flatMap((v, k) => (v === top ? [k] : [])));
    items.push({ file: path.join(root, split, m[1] as string), votes, label: votes.indexOf(top), majority, share: top / total });
  }
  return items;
}

/** mulberry32: a small seeded generator, so every draw can be made again. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
