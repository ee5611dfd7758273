// The detect=auto|always|never rule and box clipping.
import { describe, expect, it } from 'vitest';
import { clipBox, shouldDetect } from '../../src/faces/find-faces.js';

describe('shouldDetect', () => {
  const photo = { width: 640, height: 480 };
  const crop = { width: 120, height: 160 };

  it('auto detects in images whose longer side passes autoMaxSide, and not in face crops', () => {
    expect(shouldDetect('auto', photo, false, 160)).toBe(true);
    expect(shouldDetect('auto', crop, false, 160)).toBe(false);
    expect(shouldDetect('auto', { width: 161, height: 20 }, false, 160)).toBe(true);
    expect(shouldDetect('auto', crop, false, 0)).toBe(true);
  });

  it('always and never override the size rule', () => {
    expect(shouldDetect('always', crop, false, 160)).toBe(true);
    expect(shouldDetect('never', photo, false, 160)).toBe(false);
  });

  it('never detects when a box names the face', () => {
    expect(shouldDetect('always', photo, true, 160)).toBe(false);
    expect(shouldDetect('auto', photo, true, 160)).toBe(false);
  });
});

describe('clipBox', () => {
  it('rounds to whole pixels and clips to the image, keeping at least one pixel', () => {
    expect(clipBox({ x: 10.4, y: 20.6, width: 30.2, height: 40 }, 100, 100)).toEqual({ x: 10, y: 21, width: 31, height: 40 });
    expect(clipBox({ x: -15, y: 90, width: 40, height: 30 }, 100, 100)).toEqual({ x: 0, y: 90, width: 25, height: 10 });
    expect(clipBox({ x: 120, y: -50, width: 10, height: 10 }, 100, 100)).toEqual({ x: 99, y: 0, width: 1, height: 1 });
  });
});
