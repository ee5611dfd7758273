// Per uploaded image: decide whether to detect, then hand back every face as model-sized pixels with its box and
// score; and, for an audited label, the one face it is about. Images that are already face crops (or come with a box)
// keep the crop-and-stretch path of decode.ts.
import type { InputSpec } from '../bundle/load-bundle.js';
import { NoFace, SeveralFaces } from '../errors.js';
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

/** How every image of a request is searched for faces. */
export interface FindOptions {
  mode: DetectMode;
  spec: InputSpec;
  maxPixels: number;
  autoMaxSide: number;
  detector: Pick<FaceDetector, 'detect'>;
  framing?: Framing;
}

export interface FaceOptions extends FindOptions {
  box?: Box;
}

/** The faces of image `index` (errors name it): detected and FER-framed, or the image / its box as one face. */
export async function facesInImage(buf: Uint8Array, index: number, opts: FaceOptions): Promise<ImageFaces> {
  // Probed once here; both decoders take the header instead of reading it again.
  const header = await probeImage(buf, opts.maxPixels, index);
  const { width, height } = header;
  if (!shouldDetect(opts.mode, { width, height }, opts.box !== undefined, opts.autoMaxSide)) {
    const pixels = await decodeImage(buf, { width: opts.spec.width, height: opts.spec.height, maxPixels: opts.maxPixels, box: opts.box }, index, header);
    return { width, height, detected: false, faces: [{ box: opts.box ?? { x: 0, y: 0, width, height }, score: null, pixels }] };
  }
  const image = await decodeUpright(buf, opts.maxPixels, index, header);
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

/** Every image's faces, concurrently; the first failure rejects, naming its image. */
export function findFaces(items: readonly { image: Uint8Array; box?: Box }[], opts: FindOptions): Promise<ImageFaces[]> {
  return Promise.all(items.map((item, i) => facesInImage(item.image, i, { ...opts, box: item.box })));
}

/** The face image `index`'s label is about: the chosen one, or the only one; none or an unsaid choice is a 422. */
export function pickFace(image: ImageFaces, chosen: number | undefined, index: number): { index: number; face: FoundFace } {
  const n = image.faces.length;
  const at = chosen ?? 0;
  const face = image.faces[at];
  if (chosen !== undefined) {
    if (!face) throw new NoFace(`face ${chosen} was asked for, but image ${index} has ${n} face(s)`, index);
    return { index: at, face };
  }
  if (n === 0) throw new NoFace(`image ${index} has no face the detector can find; send a box part to name one, or ?detect=never`, index);
  if (n > 1 || !face) throw new SeveralFaces(`image ${index} has ${n} faces; send a face part (0-${n - 1}, left to right) or a box part to say which the label is about`, index);
  return { index: 0, face };
}

/** A face's box in whole pixels of the upright image, and the same box as fractions of its width and height. */
export interface FaceBox extends Box {
  relative: { x: number; y: number; width: number; height: number };
}

export function faceBox(face: FoundFace, image: ImageFaces): FaceBox {
  const { x, y, width, height } = face.box;
  return { x, y, width, height, relative: { x: x / image.width, y: y / image.height, width: width / image.width, height: height / image.height } };
}
