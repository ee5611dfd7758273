import { describe, expect, it } from 'vitest';
import { verdict } from '../../src/audit/verdict.js';

describe('verdict', () => {
  const t = { clean: 0.7, noisy: 0.2 };

  it.each([
    [0.95, 'clean'],
    [0.7, 'clean'],
    [0.69, 'ambiguous'],
    [0.2, 'ambiguous'],
    [0.19, 'noisy'],
    [0, 'noisy'],
  ])('p=%s against {clean 0.7, noisy 0.2} is %s', (p, expected) => {
    expect(verdict(p, t)).toBe(expected);
  });

  it('has no ambiguous band when both thresholds are equal', () => {
    expect(verdict(0.5, { clean: 0.5, noisy: 0.5 })).toBe('clean');
    expect(verdict(0.49, { clean: 0.5, noisy: 0.5 })).toBe('noisy');
  });
});
