// Overlap removal for BlazeFace detections: MediaPipe's weighted non-maximum suppression, which averages each
// cluster of overlapping anchors instead of keeping only the best one (BlazeFace fires many anchors per face, and
// their mean box and keypoints are steadier than any single one).
import type { Detection } from './blazeface.js';

/** Intersection over union of two centre/size boxes; 0 when either is empty. */
export function iou(a: Detection, b: Detection): number {
  const ix = Math.min(a.cx + a.w / 2, b.cx + b.w / 2) - Math.max(a.cx - a.w / 2, b.cx - b.w / 2);
  const iy = Math.min(a.cy + a.h / 2, b.cy + b.h / 2) - Math.max(a.cy - a.h / 2, b.cy - b.h / 2);
  const inter = Math.max(0, ix) * Math.max(0, iy);
  const union = a.w * a.h + b.w * b.h - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * detections: (N,) → (M <= maxFaces,) sorted by score, highest first. Takes the best remaining detection, gathers
 * every remaining one overlapping it by IoU >= iouThreshold, and emits their score-weighted mean geometry with the
 * best score. `weighted: false` keeps the best detection of each cluster unchanged (plain NMS).
 */
export function suppress(detections: readonly Detection[], iouThreshold: number, maxFaces: number, { weighted = true } = {}): Detection[] {
  let remaining = [...detections].sort((a, b) => b.score - a.score);
  const out: Detection[] = [];
  while (remaining.length > 0 && out.length < maxFaces) {
    const [best, ...rest] = remaining as [Detection, ...Detection[]];
    // best joins its own cluster explicitly: a degenerate (zero-area) box has IoU 0 even with itself.
    const cluster = [best, ...rest.filter((d) => iou(best, d) >= iouThreshold)];
    remaining = rest.filter((d) => iou(best, d) < iouThreshold);
    out.push(weighted ? blend(cluster, best.score) : best);
  }
  return out;
}

function blend(cluster: readonly Detection[], score: number): Detection {
  const total = cluster.reduce((s, d) => s + d.score, 0);
  const mean = (f: (d: Detection) => number) => cluster.reduce((s, d) => s + f(d) * d.score, 0) / total;
  const first = cluster[0] as Detection;
  return {
    score,
    cx: mean((d) => d.cx),
    cy: mean((d) => d.cy),
    w: mean((d) => d.w),
    h: mean((d) => d.h),
    keypoints: first.keypoints.map((_, k) => ({ x: mean((d) => d.keypoints[k]?.x ?? 0), y: mean((d) => d.keypoints[k]?.y ?? 0) })),
  };
}
