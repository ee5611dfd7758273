// From a detected face to the square region the expression model should see: framed the way FER2013 crops are
// (face centred, eyes at a fixed height, a little margin), optionally turned so the eyes are level.
import type { KeypointName, Point } from './blazeface.js';
import type { CropRegion } from './crop.js';

/** A face in pixels of the upright image. */
export interface Face {
  score: number;
  /** Left, top, width, height; may reach past the image edge when the face does. */
  box: { x: number; y: number; width: number; height: number };
  keypoints: Record<KeypointName, Point>;
}

export interface Framing {
  /** Crop side / mean of the detector box's width and height. */
  sidePerBox: number;
  /** Height of the eye line in the crop, as a fraction of its side from the top. */
  eyeLevel: number;
  /** Crop centre right of the box centre, as a fraction of the side (along the eye line). */
  xShift: number;
  /** Turn the crop so the eyes are level (in-plane alignment). */
  rotate: boolean;
}

/**
 * Medians over FER2013Train faces pasted into larger scenes, of the known crop against the detector's box and eyes:
 * `npx tsx bench/detect-framing.ts --data ../shared/data/ferplus --count 300` (docs/results.md, "Face detection
 * (issue 8)"). Calibrated on Train so the consistency benchmark on Valid does not grade its own fit. Rotation stays
 * off: FER2013 crops keep each face's own tilt, and levelling the eyes changed agreement with the bare crops by
 * +0.2 points (within noise), so it is not worth departing from what the model was trained on.
 */
export const FER_FRAMING: Framing = { sidePerBox: 1.19, eyeLevel: 0.4, xShift: 0.005, rotate: false };

/** The eye line's angle in radians (0 when level; positive when the subject's left eye is lower on screen). */
export function eyeAngle(face: Face): number {
  const { rightEye, leftEye } = face.keypoints;
  return Math.atan2(leftEye.y - rightEye.y, leftEye.x - rightEye.x);
}

/** The square region to crop for `face` under `framing` (see Framing for each term). */
export function faceRegion(face: Face, framing: Framing = FER_FRAMING): CropRegion {
  const { rightEye, leftEye } = face.keypoints;
  const angle = framing.rotate ? eyeAngle(face) : 0;
  const side = (framing.sidePerBox * (face.box.width + face.box.height)) / 2;
  const u = { x: Math.cos(angle), y: Math.sin(angle) };
  const v = { x: -u.y, y: u.x };
  const eyes = { x: (rightEye.x + leftEye.x) / 2, y: (rightEye.y + leftEye.y) / 2 };
  const boxCentre = { x: face.box.x + face.box.width / 2, y: face.box.y + face.box.height / 2 };
  // Along the eye line the box centre places the crop; across it the eyes do, at the height FER2013 crops have them.
  const along = (boxCentre.x - eyes.x) * u.x + (boxCentre.y - eyes.y) * u.y + framing.xShift * side;
  const down = (0.5 - framing.eyeLevel) * side;
  return { cx: eyes.x + along * u.x + down * v.x, cy: eyes.y + along * u.y + down * v.y, side, angle };
}
