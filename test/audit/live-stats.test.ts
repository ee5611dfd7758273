import { describe, expect, it } from 'vitest';
import { LiveStats, VERDICTS } from '../../src/audit/live-stats.js';
import type { Verdict } from '../../src/audit/judge.js';

const model = { name: 'm', version: '1' };

/** A seeded linear congruential generator, so the sequence is the same on every run. */
function lcg(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1664525 + 1013904223) % 2 ** 32;
    return s / 2 ** 32;
  };
}

describe('LiveStats', () => {
  it('matches a from-scratch recomputation over the last N items of each class and since start', () => {
    const rand = lcg(7);
    const live = new LiveStats(5);
    const seen: { label: string; p: number; v: Verdict }[] = [];
    for (let i = 0; i < 200; i++) {
      const item = { label: rand() < 0.7 ? 'a' : 'b', p: rand(), v: VERDICTS[Math.floor(rand() * 3)] as Verdict };
      seen.push(item);
      live.observe(model, item.label, item.p, item.v);
    }
    const snap = live.snapshot(['a', 'b', 'c']);
    for (const label of ['a', 'b']) {
      const all = seen.filter((s) => s.label === label);
      const last = all.slice(-5);
      const c = snap.classes.find((x) => x.label === label);
      const mean = (xs: typeof all) => xs.reduce((acc, x) => acc + x.p, 0) / xs.length;
      expect(c?.sinceStart.count).toBe(all.length);
      expect(c?.sinceStart.meanLabelProbability).toBeCloseTo(mean(all), 10);
      expect(c?.window.count).toBe(5);
      expect(c?.window.meanLabelProbability).toBeCloseTo(mean(last), 10);
      for (const v of VERDICTS) expect(c?.window.verdictRates[v]).toBeCloseTo(last.filter((x) => x.v === v).length / 5, 12);
      expect(live.windowMean(label)).toEqual({ mean: c?.window.meanLabelProbability, count: 5 });
    }
    expect(snap.classes.find((x) => x.label === 'c')).toEqual({
      label: 'c',
      sinceStart: { count: 0, meanLabelProbability: null, verdictRates: { clean: 0, ambiguous: 0, noisy: 0 } },
      window: { count: 0, meanLabelProbability: null, verdictRates: { clean: 0, ambiguous: 0, noisy: 0 } },
    });
  });

  it('starts over when the audited model changes', async () => {
    const live = new LiveStats(10);
    live.observe(model, 'a', 0.9, 'clean');
    const before = live.snapshot([]).since;
    await new Promise((r) => setTimeout(r, 5));
    live.observe({ name: 'm', version: '2' }, 'a', 0.1, 'noisy');
    expect(live.model).toEqual({ name: 'm', version: '2' });
    expect(live.windowMean('a')).toEqual({ mean: 0.1, count: 1 });
    expect(live.snapshot([]).classes[0]?.sinceStart.count).toBe(1);
    expect(Date.parse(live.snapshot([]).since)).toBeGreaterThan(Date.parse(before));
  });

  it('counts since it was created: the first item names the model without moving `since`', async () => {
    const created = Date.now();
    const live = new LiveStats(10);
    const since = live.snapshot([]).since;
    expect(Date.parse(since)).toBeGreaterThanOrEqual(created);
    await new Promise((r) => setTimeout(r, 5));
    live.observe(model, 'a', 0.9, 'clean');
    live.observe(model, 'a', 0.7, 'ambiguous');
    expect(live.snapshot([]).since).toBe(since);
    expect(live.snapshot([]).classes[0]?.sinceStart.count).toBe(2);
  });

  it('refills its windows from earlier items without counting them since start, then slides on as usual', () => {
    const live = new LiveStats(3);
    const earlier = [0.1, 0.2, 0.3, 0.4].map((p) => ({ label: 'a', labelProbability: p, verdict: 'ambiguous' as const }));
    live.restoreWindows(model, [...earlier, { label: 'b', labelProbability: 0.9, verdict: 'clean' }]);
    expect(live.model).toEqual(model);
    expect(live.windowMean('a')).toEqual({ mean: expect.closeTo(0.3, 12), count: 3 });
    expect(live.windowMean('b')).toEqual({ mean: 0.9, count: 1 });
    expect(live.snapshot(['a', 'b']).classes.map((c) => c.sinceStart.count)).toEqual([0, 0]);
    live.observe(model, 'a', 1.0, 'clean');
    expect(live.windowMean('a')).toEqual({ mean: expect.closeTo((0.3 + 0.4 + 1.0) / 3, 12), count: 3 });
    const a = live.snapshot(['a']).classes[0];
    expect(a?.sinceStart.count).toBe(1);
    expect(a?.window.verdictRates).toEqual({ clean: expect.closeTo(1 / 3, 12), ambiguous: expect.closeTo(2 / 3, 12), noisy: 0 });
    expect(() => live.restoreWindows(model, earlier)).toThrow(/before the first observed item/);
  });

  it('names the restored model by name and version only, whatever else the caller passes (a whole manifest)', () => {
    const live = new LiveStats(3);
    live.restoreWindows({ ...model, classes: ['a', 'b'], thresholds: {} } as typeof model, []);
    expect(live.model).toEqual(model);
    expect(live.snapshot(['a']).model).toEqual(model);
  });
});
