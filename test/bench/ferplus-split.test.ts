// bench/ferplus-split.ts reads FER+ label.csv with the training side's rule (training/asm_fer/data/ferplus.py,
// majority_label): the first top emotion wins ties; a row whose top emotion count does not beat both unknown and NF,
// or that has no emotion vote, is dropped.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readFerSplit } from '../../bench/ferplus-split.js';

const root = mkdtempSync(path.join(tmpdir(), 'asm-fer-ferplus-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Writes `rows` (file name, then 10 vote counts) as split/label.csv and reads it back. */
function read(rows: [string, number[]][]) {
  const split = `S${Math.random().toString(36).slice(2)}`;
  mkdirSync(path.join(root, split));
  writeFileSync(path.join(root, split, 'label.csv'), rows.map(([f, v]) => `${f},"(0, 0, 48, 48)",${v.join(',')}`).join('\n') + '\n');
  return readFerSplit(root, split);
}

describe('readFerSplit', () => {
  it('labels a row with its top emotion and says how much the crowd agreed', () => {
    const [item] = read([['a.png', [0, 7, 1, 0, 0, 0, 0, 0, 2, 0]]]);
    expect(item?.label).toBe(1);
    expect(item?.votes).toEqual([0, 7, 1, 0, 0, 0, 0, 0]);
    expect(item?.share).toBeCloseTo(7 / 8, 12);
    expect([...(item?.majority ?? [])]).toEqual([1]);
  });

  it('breaks a tie between emotions towards the first, as numpy argmax does', () => {
    const [item] = read([['a.png', [0, 0, 4, 0, 4, 0, 0, 0, 0, 0]]]);
    expect(item?.label).toBe(2);
    expect([...(item?.majority ?? [])]).toEqual([2, 4]);
  });

  it('drops rows whose top emotion does not beat unknown and NF (ties included), and rows without emotion votes', () => {
    const items = read([
      ['unknown.png', [3, 0, 0, 0, 0, 0, 0, 0, 5, 0]],
      ['nf.png', [3, 0, 0, 0, 0, 0, 0, 0, 0, 3]],
      ['none.png', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
      ['kept.png', [0, 0, 0, 0, 0, 0, 4, 0, 3, 3]],
    ]);
    expect(items.map((i) => path.basename(i.file))).toEqual(['kept.png']);
    expect(items[0]?.label).toBe(6);
  });
});
