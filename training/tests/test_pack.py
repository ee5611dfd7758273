from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asm_fer.data.pack import CONTEXTS, PackError, check, decode, encode, main, pack, read, unpack


def _images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """Faces stand-ins of every kind the predictor meets: noise, smooth ramps, flat images, hard edges."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            im = rng.integers(0, 256, (h, w))
        elif kind == 1:
            im = (yy * rng.integers(1, 9) + xx * rng.integers(1, 9) + rng.integers(0, 4, (h, w))) % 256
        elif kind == 2:
            im = np.full((h, w), rng.choice([0, 255, 128]))
        else:
            im = np.where(xx + yy > (h + w) // 2, 250, 3)
        out.append(im.astype(np.uint8))
    return np.stack(out)


def test_encode_decode_is_lossless_on_every_kind_of_image() -> None:
    images = _images(40, 7, 9, seed=0)  # not square: the right and bottom edges are exercised apart
    codec, streams = encode(images)
    assert len(streams) == CONTEXTS
    np.testing.assert_array_equal(decode(codec, len(images), streams), images)


def _dataset(root: Path) -> dict[str, np.ndarray]:
    splits = {"Train": _images(30, 12, 12, seed=1), "Valid": _images(9, 12, 12, seed=2)}
    splits["Valid"][3] = splits["Train"][5]  # a duplicate across splits is stored once
    for split, images in splits.items():
        (root / split).mkdir(parents=True)
        for i, im in enumerate(images):
            Image.fromarray(im, mode="L").save(root / split / f"img{i:03d}.png")
        (root / split / "label.csv").write_bytes(f'img000.png,"(0, 0, 12, 12)",4,0\r\n{split}\xff'.encode("latin-1"))
    return splits


def test_pack_unpack_and_check_give_the_originals_back(tmp_path: Path) -> None:
    splits = _dataset(tmp_path / "src")
    summary = pack(tmp_path / "src", ["Train", "Valid"], tmp_path / "p.npz")
    assert summary["images"] == 39 and summary["unique"] <= 38
    _meta, images, files = read(tmp_path / "p.npz")
    for split, originals in splits.items():
        np.testing.assert_array_equal(images[split], originals)
        assert files[split]["label.csv"] == (tmp_path / "src" / split / "label.csv").read_bytes()
    assert unpack(tmp_path / "p.npz", tmp_path / "dst") == 39
    with Image.open(tmp_path / "dst" / "Valid" / "img003.png") as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), splits["Train"][5])
    assert check(tmp_path / "p.npz", tmp_path / "src") == 41  # 39 images and two label files
    assert main(["check", str(tmp_path / "p.npz"), str(tmp_path / "src")]) == 0


def test_check_finds_a_changed_pixel_and_a_missing_file(tmp_path: Path) -> None:
    _dataset(tmp_path / "src")
    pack(tmp_path / "src", ["Train", "Valid"], tmp_path / "p.npz")
    path = tmp_path / "src" / "Train" / "img007.png"
    with Image.open(path) as im:
        pixels = np.asarray(im).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels, mode="L").save(path)
    with pytest.raises(PackError, match=r"img007\.png differs"):
        check(tmp_path / "p.npz", tmp_path / "src")
    pixels[0, 0] ^= 1
    Image.fromarray(pixels, mode="L").save(path)
    (tmp_path / "src" / "Valid" / "extra.txt").write_text("x")
    with pytest.raises(PackError, match="Valid: unpacked"):
        check(tmp_path / "p.npz", tmp_path / "src")


def test_colour_images_are_refused(tmp_path: Path) -> None:
    (tmp_path / "Train").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "Train" / "a.png")
    with pytest.raises(PackError, match="8-bit grey"):
        pack(tmp_path, ["Train"], tmp_path / "p.npz")
