// Per uploaded image: decide whether to detect, then hand back every face as model-sized pixels with its box and
// score; and, for an audited label, the one face it is about. Images that are already face crops (or come with a box)
// keep the crop-and-stretch path of decode.ts. Every header of a request is read, and what its images will decode to
// reserved from the pixel budget, before any of them is decoded; a cancelled request decodes nothing more.
import type { InputSpec } from '../bundle/load-bundle.js';
import { NoFace, SeveralFaces } from '../errors.js';
import { decodeImage, decodeUpright, probeImage, type Box, type ImageHeader, type RgbImage } from '../image/decode.js';
import type { PixelLease } from '../image/pixel-budget.js';
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
  detector: Pick<FaceDetector, 'detect'> & { readonly info: { inputSize: number; maxFaces: number } };
  framing?: Framing;
  /** The request's share of the pixel budget; reserved from the headers before the first decode. */
  pixels?: PixelLease;
  /** Aborts when the request is cancelled: images not yet decoded are skipped, detection leaves its queue. */
  signal?: AbortSignal;
  /** Told how many images a cancelled request did not decode. */
  onCancelled?: (images: number) => void;
}

export interface FaceOptions extends FindOptions {
  box?: Box;
  /** probeImage's answer, when the caller has it already. */
  header?: ImageHeader;
}

/**
 * Decoded pixels an image costs, from its header: its whole area (as decoded, before any resize), plus the detector's
 * letterbox and up to maxFaces crops when detecting, or its model-sized output otherwise.
 */
export function pixelCost(header: Pick<ImageHeader, 'width' | 'height'>, detect: boolean, opts: Pick<FindOptions, 'spec' | 'detector'>): number {
  const crop = opts.spec.width * opts.spec.height;
  const extra = detect ? opts.detector.info.inputSize ** 2 + opts.detector.info.maxFaces * crop : crop;
  return header.width * header.height + extra;
}

/** The faces of image `index` (errors name it): detected and FER-framed, or the image / its box as one face. */
export async function facesInImage(buf: Uint8Array, index: number, opts: FaceOptions): Promise<ImageFaces> {
  // Probed once; both decoders take the header instead of reading it again.
  const header = opts.header ?? (await probeImage(buf, opts.maxPixels, index));
  const { width, height } = header;
  if (!shouldDetect(opts.mode, { width, height }, opts.box !== undefined, opts.autoMaxSide)) {
    const pixels = await decodeImage(buf, { width: opts.spec.width, height: opts.spec.height, maxPixels: opts.maxPixels, box: opts.box }, index, header);
    return { width, height, detected: false, faces: [{ box: opts.box ?? { x: 0, y: 0, width, height }, score: null, pixels }] };
  }
  const image = await decodeUpright(buf, opts.maxPixels, index, header);
  const faces = await opts.detector.detect(image, opts.signal);
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

/**
 * Images of one request decoded at once: enough to keep libuv's four threads busy across requests, few enough that a
 * request's decoded images do not all wait for the detector at the same time.
 */
const DECODE_CONCURRENCY = 2;

/**
 * Every image's faces, in order; the first failure rejects, naming its image. All headers are read first; their
 * pixel cost is reserved from opts.pixels (413 / 503 before any decode); then images are decoded DECODE_CONCURRENCY
 * at a time, and none is started once opts.signal has aborted.
 */
export async function findFaces(items: readonly { image: Uint8Array; box?: Box }[], opts: FindOptions): Promise<ImageFaces[]> {
  const headers = await Promise.all(items.map((item, i) => probeImage(item.image, opts.maxPixels, i)));
  if (opts.signal?.aborted) {
    opts.onCancelled?.(items.length);
    throw opts.signal.reason;
  }
  const cost = headers.reduce((sum, h, i) => sum + pixelCost(h, shouldDetect(opts.mode, h, items[i]?.box !== undefined, opts.autoMaxSide), opts), 0);
  opts.pixels?.reserve(cost);
  const results: ImageFaces[] = new Array<ImageFaces>(items.length);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lane = async () => {
    while (next < items.length && !failure) {
      if (opts.signal?.aborted) break;
      const i = next++;
      const item = items[i] as (typeof items)[number];
      try {
        results[i] = await facesInImage(item.image, i, { ...opts, box: item.box, header: headers[i] });
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  // Every lane settles before the answer, so the lease is released only once no image of this request is held.
  await Promise.all(Array.from({ length: Math.min(DECODE_CONCURRENCY, items.length) }, lane));
  if (opts.signal?.aborted) {
    opts.onCancelled?.(items.length - next);
    throw opts.signal.reason;
  }
  if (failure) throw failure.err;
  return results;
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
