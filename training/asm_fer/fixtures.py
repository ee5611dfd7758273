"""Generated test data in the formats users have: a tiny FER+-layout dataset with planted class
patterns, a tiny trained bundle, and preprocessing parity vectors for the TypeScript tests.
Nothing here touches a real dataset.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from .config import TrainConfig
from .data.ferplus import CLASSES, SPLITS
from .data.preprocess import InputSpec, preprocess_file

# Exact-size images go through the same float arithmetic on both sides; only float32 rounding differs.
EXACT_TOLERANCE = {"maxAbs": 1e-5, "meanAbs": 1e-6}
# JPEG decoders (libjpeg-turbo in Pillow, libvips' in sharp) may round the IDCT differently by a grey
# level or two: 2/255 in [0, 1], doubled by std 0.5.
JPEG_TOLERANCE = {"maxAbs": 0.04, "meanAbs": 0.01}
# Resampling: Pillow's bilinear and libvips' linear reduce round differently; measured on these images
# 0.008 max / 0.002 mean (docs/results.md), allowed 0.05 (6 grey levels) / 0.01.
RESIZE_TOLERANCE = {"maxAbs": 0.05, "meanAbs": 0.01}


CHECKER_SIZES = (2, 3, 4, 6, 8, 12, 16, 24)  # adjacent sizes differ by more than the 1.25 zoom of the weak view


def planted_face(label: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A grey image whose class is readable from the square size of a checkerboard; flips, shifts
    and the weak view's zoom keep it readable."""
    cell = CHECKER_SIZES[label % len(CHECKER_SIZES)]
    off = rng.integers(0, cell, 2)
    yy, xx = np.mgrid[0:size, 0:size]
    board = (((yy + off[0]) // cell + (xx + off[1]) // cell) % 2) * 120.0 + 60
    image: np.ndarray = np.clip(board + rng.normal(0, 12, (size, size)), 0, 255).astype(np.uint8)
    return image


def _votes_row(label: int, rng: np.random.Generator) -> list[int]:
    votes = [0] * (len(CLASSES) + 2)
    top = int(rng.integers(6, 11))
    votes[label] = top
    for _ in range(10 - top):
        votes[int(rng.integers(0, len(CLASSES) + 2))] += 1
    if votes.index(max(votes)) != label:  # keep the planted label the strict majority
        votes = [0] * (len(CLASSES) + 2)
        votes[label] = 10
    return votes


def write_ferplus_fixture(root: Path, *, per_class: int = 10, seed: int = 0) -> Path:
    """FER+ layout under `root`: FER2013Train (per_class images per class) and FER2013Valid (half as
    many), each with a label.csv; every split also holds one unknown-majority row that must be dropped."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("valid", max(1, per_class // 2))):
        folder = root / SPLITS[split]
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        index = 0
        for label in range(len(CLASSES)):
            for _ in range(n):
                name = f"fer{index:07d}.png"
                Image.fromarray(planted_face(label, rng)).save(folder / name)
                rows.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, _votes_row(label, rng))))
                index += 1
        name = f"fer{index:07d}.png"
        Image.fromarray(planted_face(0, rng)).save(folder / name)
        rows.append(f'{name},"(0, 0, 48, 48)",1,0,0,0,0,0,0,0,8,1')
        (folder / "label.csv").write_text("\n".join(rows) + "\n")
    return root


def _parity_images(folder: Path) -> list[tuple[str, dict[str, float]]]:
    rng = np.random.default_rng(7)
    gray = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    rgb = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(gray, "L").save(folder / "gray48.png")
    Image.fromarray(rgb, "RGB").save(folder / "rgb48.png")
    alpha = rng.integers(0, 256, (48, 48, 1), dtype=np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], 2), "RGBA").save(folder / "rgba48.png")
    yy, xx = np.mgrid[0:160, 0:200]
    smooth = np.stack([xx * 255 / 199, yy * 255 / 159, (xx + yy) * 255 / 358], 2).astype(np.uint8)
    Image.fromarray(smooth, "RGB").save(folder / "large.png")
    Image.fromarray(smooth, "RGB").save(folder / "large.jpg", quality=95)
    tall = Image.fromarray(smooth[:48, :64], "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    tall.save(folder / "exif-rotated.jpg", quality=95, exif=exif)
    gray_jpg = Image.fromarray(planted_face(3, rng), "L")
    gray_jpg.save(folder / "gray48.jpg", quality=95)
    return [
        ("gray48.png", EXACT_TOLERANCE),
        ("rgb48.png", EXACT_TOLERANCE),
        ("rgba48.png", EXACT_TOLERANCE),
        ("gray48.jpg", JPEG_TOLERANCE),
        ("large.png", RESIZE_TOLERANCE),
        ("large.jpg", RESIZE_TOLERANCE),
        ("exif-rotated.jpg", RESIZE_TOLERANCE),
    ]


def write_parity_vectors(folder: Path, spec: InputSpec) -> Path:
    """Images plus the tensors `transforms.preprocess_file` makes of them, in `parity.json`."""
    from .export.bundle import input_section

    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for file, tolerance in _parity_images(folder):
        tensor = preprocess_file(folder / file, spec)  # (C, H, W)
        cases.append(
            {
                "file": file,
                "shape": [1, *tensor.shape],
                "tensor": [round(float(v), 7) for v in tensor.ravel()],
                "tolerance": tolerance,
            }
        )
    path = folder / "parity.json"
    path.write_text(json.dumps({"input": input_section(spec), "cases": cases}) + "\n")
    return path


def tiny_config(data: Path, run_dir: Path) -> TrainConfig:
    return TrainConfig(
        data=str(data),
        widths=(8, 16, 16, 16),
        blocks=(1, 1, 1, 1),
        epochs=12,
        batch_size=16,
        lr=1e-2,
        run_dir=str(run_dir),
        threads=1,
        # Not `auto`: on a CPU with bf16 units auto times both and picks the faster, and under load two runs of one
        # test could pick differently (seen on an AVX-512-BF16 EPYC: the straight run fp32, the resumed one bf16).
        precision="fp32",
    )


def make_fixtures(out: Path) -> Path:
    """Dataset, trained tiny bundle and parity vectors under `out`; returns the bundle folder."""
    from .export.export import export_bundle
    from .run import input_spec
    from .train import train

    data = write_ferplus_fixture(out / "ferplus")
    # with a calibration split, so the bundle carries every section a shipped one has (issue 17)
    cfg = replace(tiny_config(data, out / "run"), calibration=0.2)
    final = train(cfg)
    bundle = out / "bundle"
    export_bundle(final, bundle, name="tiny-ferplus", data_root=str(data))
    write_parity_vectors(out / "parity", input_spec(cfg))
    return bundle
