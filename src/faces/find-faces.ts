// Per uploaded image: decide whether to detect, then hand back every face as model-sized pixels with its box and
// score. Images that are already face crops (or come with a box) keep the crop-and-stretch path of decode.ts.
import type { InputSpec } from '../bundle/load-bundle.js';
import { decodeImage, decodeUpright, probeImage, type Box, type RgbImage } from '../image/decode.js';
import type { KeypointName, Point } from './blazeface.js';
import type { FaceDetector } from './detector.js';
import { FER_FRAMING, faceRegion, type Framing } from './framing.js';
import { cropRegion } from './crop.js';

export type DetectMode = 'auto' | 'always' | 'never';

/**
 * Whether the detector runs on an image of this upright size. A `box` names the face, so it never does. `auto`
 * runs it unless the longer side is at most autoMaxSide pixels: an image that small is taken to be a face crop
 * (FER2013's are 48 px; a face that fills less of such an image is below what the detector finds anyway).
 */
export function shouldDetect(mode: DetectMode, size: { width: number; height: number }, hasBox: boolean, autoMaxSide: number): boolean {
  if (hasBox || mode === 'never') return false;
  return mode === 'always' || Math.max(size.width, size.height) > autoMaxSide;
}

/** A face ready for the expression model. */
export interface FoundFace {
  /** Whole pixels, clipped to the image. */
  box: Box;
  /** Detection score, or null when the face was given (whole image or box), not detected. */
  score: number | null;
  /** Detected keypoints in image pixels; absent when not detected. */
  keypoints?: Record<KeypointName, Point>;
  /** The model's input pixels (spec.width x spec.height). */
  pixels: RgbImage;
}

export interface ImageFaces {
  width: number;
  height: number;
  detected: boolean;
  /** In reading order (left to right) when detected; the one given face otherwise. */
  faces: FoundFace[];
}

export interface FaceOptions {
  mode: DetectMode;
  box?: Box;
  spec: InputSpec;
  maxPixels: number;
  autoMaxSide: number;
  detector: Pick<FaceDetector, 'detect'>;
  framing?: Framing;
}

/** The faces of image `index` (errors name it): detected and FER-framed, or the image / its box as one face. */
export async function facesInImage(buf: Uint8Array, index: number, opts: FaceOptions): Promise<ImageFaces> {
  const { width, height } = await probeImage(buf, opts.maxPixels, index);
  if (!shouldDetect(opts.mode, { width, height }, opts.box !== undefined, opts.autoMaxSide)) {
    const pixels = await decodeImage(buf, { width: opts.spec.width, height: opts.spec.height, maxPixels: opts.maxPixels, box: opts.box }, index);
    return { width, height, detected: false, faces: [{ box: opts.box ?? { x: 0, y: 0, width, height }, score: null, pixels }] };
  }
  const image = await decodeUpright(buf, opts.maxPixels, index);
  const faces = await opts.detector.detect(image);
  return {
    width,
    height,
    detected: true,
    faces: faces.map((face) => ({
      box: clipBox(face.box, width, height),
      score: face.score,
      keypoints: face.keypoints,
      pixels: cropRegion(image, faceRegion(face, opts.framing ?? FER_FRAMING), opts.spec.width, opts.spec.height),
    })),
  };
}

/** A float box → whole pixels inside width x height (at least 1 x 1). */
export function clipBox(b: { x: number; y: number; width: number; height: number }, width: number, height: number): Box {
  const x0 = Math.min(width - 1, Math.max(0, Math.round(b.x)));
  const y0 = Math.min(height - 1, Math.max(0, Math.round(b.y)));
  const x1 = Math.max(x0 + 1, Math.min(width, Math.round(b.x + b.width)));
  const y1 = Math.max(y0 + 1, Math.min(height, Math.round(b.y + b.height)));
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}
