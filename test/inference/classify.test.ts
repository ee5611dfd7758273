import { describe, expect, it } from 'vitest';
import { classify } from '../../src/inference/classify.js';

describe('classify', () => {
  const classes = ['neutral', 'happiness', 'surprise'];

  it('picks the most probable class and maps every class to its probability', () => {
    const r = classify(Float32Array.from([0.2, 0.5, 0.3]), classes);
    expect(r.label).toBe('happiness');
    expect(r.confidence).toBeCloseTo(0.5);
    expect(Object.keys(r.probabilities)).toEqual(classes);
    expect(r.probabilities.surprise).toBeCloseTo(0.3);
  });

  it('breaks ties toward the earlier class, as argmax does', () => {
    expect(classify([0.4, 0.4, 0.2], classes).label).toBe('neutral');
  });

  it('refuses a row whose length is not the class count', () => {
    expect(() => classify([0.5, 0.5], classes)).toThrow(/2 probabilities for 3 classes/);
  });
});
