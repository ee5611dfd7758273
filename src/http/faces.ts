// The face step shared by /v1/predict and /v1/audit: the `detect` query and `face` parts, finding each image's faces,
// and the box/score/keypoints JSON of a face.
import type { Request } from 'express';
import type { InputSpec } from '../bundle/load-bundle.js';
import { facesInImage, type DetectMode, type FoundFace, type ImageFaces } from '../faces/find-faces.js';
import { BadRequest } from '../errors.js';
import type { Box } from '../image/decode.js';
import type { components } from './api.gen.js';
import type { HttpDeps } from './deps.js';
import { textParts } from './upload.js';

type FaceBox = components['schemas']['FaceBox'];
type Keypoints = components['schemas']['Keypoints'];

/** The `detect` query parameter (the validator has already checked it against the enum). */
export function detectMode(req: Request): DetectMode {
  const raw = req.query.detect;
  return raw === 'always' || raw === 'never' ? raw : 'auto';
}

/** The `face` text parts as indices, one per image or none at all; the i-th belongs to the i-th image. */
export function faceParts(req: Request, imageCount: number): number[] {
  const raw = textParts(req, 'face');
  if (raw.length === 0) return [];
  if (raw.length !== imageCount) {
    throw new BadRequest(`got ${imageCount} image part(s) and ${raw.length} face part(s); send one face index per image, in the same order, or none`);
  }
  return raw.map((text, i) => {
    if (!/^\s*\d{1,3}\s*$/.test(text)) throw new BadRequest(`face part ${i} is ${JSON.stringify(text.slice(0, 64))}; expected a face index such as 0`);
    return Number(text.trim());
  });
}

/** Every image's faces, concurrently; the first failure rejects, naming its image. */
export function findFaces(
  deps: Pick<HttpDeps, 'config' | 'detector'>,
  spec: InputSpec,
  images: readonly Uint8Array[],
  boxes: readonly (Box | undefined)[],
  mode: DetectMode,
): Promise<ImageFaces[]> {
  const { config, detector } = deps;
  return Promise.all(
    images.map((buf, i) =>
      facesInImage(buf, i, { mode, box: boxes[i], spec, maxPixels: config.ASM_FER_MAX_PIXELS, autoMaxSide: config.ASM_FER_DETECT_AUTO_MAX_SIDE, detector }),
    ),
  );
}

export function faceBox(face: FoundFace, image: ImageFaces): FaceBox {
  const { x, y, width, height } = face.box;
  return { x, y, width, height, relative: { x: x / image.width, y: y / image.height, width: width / image.width, height: height / image.height } };
}

/** Box, score and (when detected) keypoints of a face, as the contract's Face has them. */
export function faceJson(face: FoundFace, image: ImageFaces): { box: FaceBox; score: number | null; keypoints?: Keypoints } {
  return { box: faceBox(face, image), score: face.score, ...(face.keypoints ? { keypoints: face.keypoints } : {}) };
}
