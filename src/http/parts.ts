// The parts of a /v1/predict or /v1/audit request, read once into one object per image: its bytes and, where sent, its
// face box, face index, label and client ids. Counts that do not match the images are 400s naming the part.
import type { Request } from 'express';
import { BadRequest } from '../errors.js';
import type { DetectMode } from '../faces/find-faces.js';
import type { Box } from '../image/decode.js';

/** The `image` file parts in order; any other file part, or none at all, is a 400. */
function imageParts(req: Request): Buffer[] {
  const files = (Array.isArray(req.files) ? req.files : []) as Express.Multer.File[];
  const stray = files.find((f) => f.fieldname !== 'image');
  if (stray) throw new BadRequest(`unexpected file part ${JSON.stringify(stray.fieldname)}; images go in "image" parts`);
  if (files.length === 0) {
    throw new BadRequest('no "image" file part; send each image as a file in a part named "image", with a filename in its Content-Disposition (form-data; name="image"; filename="face.png")');
  }
  return files.map((f) => f.buffer);
}

/** The text parts called `name`, in order (multer gives a string for one part, an array for several). */
function textParts(req: Request, name: string): string[] {
  const raw: unknown = (req.body as Record<string, unknown> | undefined)?.[name];
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw : [raw]).map(String);
}

/**
 * An optional client id part (itemId, annotatorId, datasetId) per image: none (all null), one per image in order, or,
 * when `shared`, a single one that applies to every image.
 */
function clientIdParts(req: Request, name: string, imageCount: number, shared: boolean): (string | null)[] {
  const raw = textParts(req, name);
  if (raw.length === 0) return Array.from({ length: imageCount }, () => null);
  if (raw.length === imageCount) return raw;
  if (shared && raw.length === 1) return Array.from({ length: imageCount }, () => raw[0] as string);
  const allowed = shared ? `one ${name} for all images, one per image in the same order, or none` : `one ${name} per image in the same order, or none`;
  throw new BadRequest(`got ${imageCount} image part(s) and ${raw.length} ${name} part(s); send ${allowed}`);
}

/** openapi.yaml's Box pattern: x and y from 0, width and height from 1 (no leading zero), at most 6 digits each. */
const BOX = /^\s*(\d{1,6})\s*,\s*(\d{1,6})\s*,\s*([1-9]\d{0,5})\s*,\s*([1-9]\d{0,5})\s*$/;

/**
 * The `box` text parts ("x,y,width,height" in pixels of the upright image), one per image or none at all;
 * the i-th box belongs to the i-th image.
 */
function boxParts(req: Request, imageCount: number): Box[] {
  const raw = textParts(req, 'box');
  if (raw.length === 0) return [];
  if (raw.length !== imageCount) {
    throw new BadRequest(`got ${imageCount} image part(s) and ${raw.length} box part(s); send one box per image, in the same order, or none`);
  }
  return raw.map((text, i) => {
    const m = BOX.exec(text);
    if (!m) throw new BadRequest(`box part ${i} is ${JSON.stringify(text.slice(0, 64))}; expected "x,y,width,height" in whole pixels, width and height at least 1`);
    const [x, y, width, height] = m.slice(1).map(Number) as [number, number, number, number];
    return { x, y, width, height };
  });
}

/** The `detect` query parameter (the validator has already checked it against the enum). */
function detectMode(req: Request): DetectMode {
  const raw = req.query.detect;
  return raw === 'always' || raw === 'never' ? raw : 'auto';
}

/** The `face` text parts as indices, one per image or none at all; the i-th belongs to the i-th image. */
function faceParts(req: Request, imageCount: number): number[] {
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

export interface PredictItem {
  image: Buffer;
  /** The face, when the client names it; the image is then not searched. */
  box: Box | undefined;
}

export interface AuditItemRequest extends PredictItem {
  label: string;
  /** Which detected face (left to right) the label is about, when the image has several. */
  face: number | undefined;
  itemId: string | null;
  annotatorId: string | null;
  datasetId: string | null;
}

export interface PartsOf<Item> {
  mode: DetectMode;
  items: Item[];
}

/** POST /v1/predict: image parts, optional box parts, ?detect=. */
export function predictRequest(req: Request): PartsOf<PredictItem> {
  const images = imageParts(req);
  const boxes = boxParts(req, images.length);
  const mode = detectMode(req);
  return { mode, items: images.map((image, i) => ({ image, box: boxes[i] })) };
}

/** POST /v1/audit: image and label parts, optional box, face and client id parts, ?detect=. */
export function auditRequest(req: Request): PartsOf<AuditItemRequest> {
  const images = imageParts(req);
  const labels = textParts(req, 'label');
  if (labels.length !== images.length) {
    throw new BadRequest(`got ${images.length} image part(s) and ${labels.length} label part(s); send one label per image, in the same order`);
  }
  const boxes = boxParts(req, images.length);
  const itemIds = clientIdParts(req, 'itemId', images.length, false);
  const annotatorIds = clientIdParts(req, 'annotatorId', images.length, true);
  const datasetIds = clientIdParts(req, 'datasetId', images.length, true);
  const faces = faceParts(req, images.length);
  const mode = detectMode(req);
  return {
    mode,
    items: images.map((image, i) => ({
      image,
      label: labels[i] as string,
      box: boxes[i],
      face: faces[i],
      itemId: itemIds[i] ?? null,
      annotatorId: annotatorIds[i] ?? null,
      datasetId: datasetIds[i] ?? null,
    })),
  };
}
