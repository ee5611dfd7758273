"""A lossless pack of a dataset of small grey images, for a machine that the dataset cannot be copied to as it is:
a lent GPU takes 64 MiB in all with the repository (training/experiments/gpu.sh), and FER+'s 32,137 Train and
Valid PNGs are 78 MB. Each split folder keeps its images' names and pixels (8-bit grey, one size) and its other
files byte for byte (FER+'s `label.csv`); `unpack` writes them back as PNG files whose pixels are the originals'.

The codec, about 1,470 bytes a 48x48 face against 2,420 as PNG and 1,719 for xz of a row delta: an image that
occurs more than once is stored once; each pixel is predicted from its causal neighbours (the mean of LOCO-I's
median edge detector and a fixed linear predictor), and its residual mod 256 goes to one of 48 streams chosen by
the local activity (16 levels, at the pack's quantiles) and the sign of the two predictors' disagreement; each
stream is xz-compressed, where LZMA's literal coder adapts to that context's residuals. Decoding runs the same
predictor one pixel position at a time over all images at once (numpy; seconds for FER+).

    python -m asm_fer.data.pack pack ROOT OUT.npz SPLIT...   # e.g. ../shared/data/ferplus FER2013Train FER2013Valid
    python -m asm_fer.data.pack check OUT.npz ROOT           # unpack into a temporary folder, compare with ROOT
    python -m asm_fer.data.pack unpack OUT.npz DEST          # DEST/SPLIT/... as in ROOT
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

FORMAT = "asm-fer-pack/1"
IMAGE_SUFFIX = ".png"
# the linear predictor's weights on W, N, NW, NE, WW, NN, in 1/1024 (a least-squares fit on FER+, summing to 1024)
LINEAR = (722, 638, -328, 212, -118, -102)
ACTIVITY_LEVELS = 16
CONTEXTS = ACTIVITY_LEVELS * 3
XZ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9, "lc": 0, "lp": 0, "pb": 0}]  # literals alone, no byte context


class PackError(ValueError):
    """A folder that this codec cannot pack, or a pack that does not decode to what it claims."""


def _xz(data: bytes) -> np.ndarray:
    return np.frombuffer(lzma.compress(data, format=lzma.FORMAT_XZ, filters=XZ_FILTERS), dtype=np.uint8)


def _unxz(blob: np.ndarray) -> bytes:
    return lzma.decompress(blob.tobytes())


def _model(X: np.ndarray, y: int, x: int, linear: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prediction, activity and sign of the predictors' disagreement, each (N,), at pixel (y, x) of the images
    X (H, W, N) int32, from the pixels before it in raster order alone (outside the image: the nearest of them)."""
    _, W, N = X.shape
    if y == 0 and x == 0:
        mid = np.full(N, 128, np.int32)
        w = n = nw = ne = ww = nn = mid
    elif y == 0:
        w = X[0, x - 1]
        ww = X[0, x - 2] if x >= 2 else w
        n = nw = ne = nn = w
    else:
        n = X[y - 1, x]
        nn = X[y - 2, x] if y >= 2 else n
        ne = X[y - 1, x + 1] if x + 1 < W else n
        if x == 0:
            w = nw = ww = n
        else:
            w, nw = X[y, x - 1], X[y - 1, x - 1]
            ww = X[y, x - 2] if x >= 2 else w
    hi, lo = np.maximum(w, n), np.minimum(w, n)
    med = np.where(nw >= hi, lo, np.where(nw <= lo, hi, w + n - nw))
    lin = np.clip(
        (linear[0] * w + linear[1] * n + linear[2] * nw + linear[3] * ne + linear[4] * ww + linear[5] * nn + 512) >> 10, 0, 255
    )
    activity = np.abs(w - ww) + np.abs(n - nw) + 2 * np.abs(ne - n) + np.abs(w - nw) + np.abs(n - nn) + np.abs(med - lin)
    return (med + lin + 1) >> 1, activity, np.sign(lin - med)


def _contexts(activity: np.ndarray, sign: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    ctx: np.ndarray = np.searchsorted(thresholds, activity, side="right") * 3 + sign + 1
    return ctx


def encode(images: np.ndarray) -> tuple[dict[str, Any], list[np.ndarray]]:
    """(N, H, W) uint8 images -> the codec's parameters and its CONTEXTS xz-compressed residual streams."""
    _, H, W = images.shape
    X = np.ascontiguousarray(images.transpose(1, 2, 0)).astype(np.int32)  # (H, W, N): one position's pixels together
    linear = np.array(LINEAR, np.int64)
    pred, activity, sign = np.empty_like(X), np.empty_like(X), np.empty_like(X)
    for y in range(H):
        for x in range(W):
            pred[y, x], activity[y, x], sign[y, x] = _model(X, y, x, linear)
    levels = np.quantile(activity, np.arange(1, ACTIVITY_LEVELS) / ACTIVITY_LEVELS, method="lower")
    thresholds = np.maximum.accumulate(levels.astype(np.int64))  # ascending; a repeated level leaves a stream empty
    ctx = _contexts(activity, sign, thresholds).ravel()  # position-major, then image: the decoder's order
    residual = ((X - pred) & 255).astype(np.uint8).ravel()
    streams = [_xz(residual[ctx == k].tobytes()) for k in range(CONTEXTS)]
    return {"shape": [H, W], "linear": list(LINEAR), "thresholds": thresholds.tolist()}, streams


def decode(codec: dict[str, Any], n: int, streams: Sequence[np.ndarray]) -> np.ndarray:
    """The inverse of `encode`: (n, H, W) uint8 images."""
    H, W = codec["shape"]
    linear, thresholds = np.array(codec["linear"], np.int64), np.array(codec["thresholds"], np.int64)
    raw = [np.frombuffer(_unxz(s), dtype=np.uint8) for s in streams]
    data = np.concatenate(raw).astype(np.int32)
    base = np.cumsum([0] + [len(r) for r in raw[:-1]])
    taken = np.zeros(CONTEXTS, np.int64)
    X = np.zeros((H, W, n), np.int32)
    for y in range(H):
        for x in range(W):
            pred, activity, sign = _model(X, y, x, linear)
            ctx = _contexts(activity, sign, thresholds)
            counts = np.bincount(ctx, minlength=CONTEXTS)
            order = np.argsort(ctx, kind="stable")  # within a context, images in order, as encode wrote them
            ranked = ctx[order]
            within = np.arange(n) - (np.cumsum(counts) - counts)[ranked]
            X[y, x, order] = (pred[order] + data[base[ranked] + taken[ranked] + within]) & 255
            taken += counts
    if not np.array_equal(taken, [len(r) for r in raw]):
        raise PackError(f"the streams hold {[len(r) for r in raw]} residuals, decoding used {taken.tolist()}")
    return np.ascontiguousarray(X.transpose(2, 0, 1)).astype(np.uint8)


def _read_split(folder: Path) -> tuple[list[str], np.ndarray, dict[str, bytes]]:
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix == IMAGE_SUFFIX)
    others = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.suffix != IMAGE_SUFFIX}
    if any(p.is_dir() for p in folder.iterdir()):
        raise PackError(f"{folder} holds folders; the pack keeps one level of files")
    pixels = []
    for name in names:
        with Image.open(folder / name) as im:
            if im.mode != "L":
                raise PackError(f"{folder / name} is {im.mode}; the pack holds 8-bit grey images")
            pixels.append(np.asarray(im))
    if len({p.shape for p in pixels}) > 1:
        raise PackError(f"{folder}: images of several sizes {sorted({p.shape for p in pixels})}; the pack holds one")
    return names, np.stack(pixels) if pixels else np.zeros((0, 1, 1), np.uint8), others


def pack(root: Path | str, splits: Sequence[str], out: Path | str) -> dict[str, Any]:
    """Pack ROOT/SPLIT for each split into one file `out` (an uncompressed .npz of xz blobs); returns its summary."""
    root, out = Path(root), Path(out)
    names: dict[str, list[str]] = {}
    files: dict[str, list[str]] = {}
    blobs: dict[str, np.ndarray] = {}
    images = []
    for split in splits:
        names[split], pixels, others = _read_split(root / split)
        images.append(pixels)
        files[split] = list(others)
        for data in others.values():
            blobs[f"file{len(blobs)}"] = _xz(data)
    shapes = {im.shape[1:] for im in images if len(im)}
    if len(shapes) != 1:
        raise PackError(f"the splits' images are of sizes {sorted(shapes)}; the pack holds one size")
    everything = np.concatenate([im for im in images if len(im)])
    flat = everything.reshape(len(everything), -1)
    unique, index = np.unique(flat, axis=0, return_inverse=True)
    codec, streams = encode(unique.reshape(len(unique), *everything.shape[1:]))
    meta = {"format": FORMAT, "codec": codec, "splits": splits, "names": names, "files": files, "unique": len(unique)}
    blobs |= {f"stream{k}": s for k, s in enumerate(streams)}
    blobs |= {"meta": _xz(json.dumps(meta).encode()), "index": _xz(index.astype("<u4").ravel().tobytes())}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:
        np.savez(f, **blobs)  # type: ignore[arg-type]
    return {
        "images": len(everything),
        "unique": len(unique),
        "bytes": out.stat().st_size,
        "bytes_per_image": round(sum(s.nbytes for s in streams) / len(everything), 1),
    }


def read(path: Path | str) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, dict[str, bytes]]]:
    """A pack's metadata, each split's images (N, H, W) uint8 in name order, and each split's other files."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(_unxz(z["meta"]))
        if meta.get("format") != FORMAT:
            raise PackError(f"{path} is {meta.get('format')!r}, not {FORMAT}")
        index = np.frombuffer(_unxz(z["index"]), dtype="<u4").astype(np.int64)
        unique = decode(meta["codec"], meta["unique"], [z[f"stream{k}"] for k in range(CONTEXTS)])
        blobs = [_unxz(z[f"file{i}"]) for i in range(sum(len(v) for v in meta["files"].values()))]
    everything = unique[index]
    images, files, at, blob = {}, {}, 0, 0
    for split in meta["splits"]:
        count = len(meta["names"][split])
        images[split], at = everything[at : at + count], at + count
        files[split] = dict(zip(meta["files"][split], blobs[blob : blob + len(meta["files"][split])], strict=True))
        blob += len(meta["files"][split])
    return meta, images, files


def unpack(path: Path | str, dest: Path | str) -> int:
    """Write the pack's splits under `dest` (PNG files, the other files byte for byte); returns the image count."""
    meta, images, files = read(path)
    for split in meta["splits"]:
        folder = Path(dest) / split
        folder.mkdir(parents=True, exist_ok=True)
        for name, pixels in zip(meta["names"][split], images[split], strict=True):
            Image.fromarray(pixels, mode="L").save(folder / name, compress_level=1)
        for name, data in files[split].items():
            (folder / name).write_bytes(data)
    return sum(len(v) for v in images.values())


def check(path: Path | str, root: Path | str) -> int:
    """Unpack into a temporary folder and compare it with the originals under `root`: the same files in every
    split, each image's pixels and every other file's bytes equal; returns the number of files compared."""
    meta = read(path)[0]
    compared = 0
    with tempfile.TemporaryDirectory() as tmp:
        unpack(path, tmp)
        for split in meta["splits"]:
            ours, theirs = Path(tmp) / split, Path(root) / split
            mine, orig = sorted(p.name for p in ours.iterdir()), sorted(p.name for p in theirs.iterdir())
            if mine != orig:
                raise PackError(
                    f"{split}: unpacked {len(mine)} files, {theirs} has {len(orig)} (differing: "
                    f"{sorted(set(mine) ^ set(orig))[:5]})"
                )
            for name in mine:
                if name.endswith(IMAGE_SUFFIX):
                    with Image.open(ours / name) as a, Image.open(theirs / name) as b:
                        same = a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
                else:
                    same = (ours / name).read_bytes() == (theirs / name).read_bytes()
                if not same:
                    raise PackError(f"{split}/{name} differs from {theirs / name}")
                compared += 1
    return compared


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asm_fer.data.pack", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack ROOT/SPLIT... into OUT")
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("splits", nargs="+")
    p = sub.add_parser("check", help="unpack PACK into a temporary folder and compare it with ROOT")
    p.add_argument("pack", type=Path)
    p.add_argument("root", type=Path)
    p = sub.add_parser("unpack", help="write PACK's splits under DEST")
    p.add_argument("pack", type=Path)
    p.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            print(json.dumps(pack(args.root, args.splits, args.out)))
        elif args.command == "check":
            print(f"ok: {args.pack} unpacks to {check(args.pack, args.root)} files equal to those under {args.root}")
        else:
            print(f"{unpack(args.pack, args.dest)} images written under {args.dest}")
    except PackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
