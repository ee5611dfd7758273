from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from asm_fer.transforms import InputSpec, load_pixels, preprocess_file, weak_view

SPEC = InputSpec()


def test_grey_48_png_is_read_exactly(tmp_path: Path) -> None:
    grey = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48) % 256
    Image.fromarray(grey.astype(np.uint8), "L").save(tmp_path / "g.png")
    np.testing.assert_allclose(load_pixels(tmp_path / "g.png", SPEC)[0], grey, atol=1e-4)
    np.testing.assert_allclose(preprocess_file(tmp_path / "g.png", SPEC)[0], grey / 255 * 2 - 1, atol=1e-6)


def test_rgb_becomes_bt601_luma(tmp_path: Path) -> None:
    Image.new("RGB", (48, 48), (200, 100, 50)).save(tmp_path / "c.png")
    np.testing.assert_allclose(load_pixels(tmp_path / "c.png", SPEC), 0.299 * 200 + 0.587 * 100 + 0.114 * 50, atol=1e-3)


def test_other_sizes_are_resized_and_exif_rotation_applied(tmp_path: Path) -> None:
    im = Image.new("RGB", (64, 48), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 32, 48))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: the white half ends on top
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    pixels = load_pixels(tmp_path / "r.jpg", SPEC)
    assert pixels.shape == (1, 48, 48)
    assert pixels[0, :20].mean() > 200 and pixels[0, -20:].mean() < 50


def test_three_channel_spec_keeps_rgb(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10), (10, 20, 30)).save(tmp_path / "c.png")
    spec = InputSpec(channels=3, height=8, width=8, mean=(0.5,) * 3, std=(0.5,) * 3)
    pixels = load_pixels(tmp_path / "c.png", spec)
    assert pixels.shape == (3, 8, 8)
    np.testing.assert_allclose(pixels[:, 0, 0], [10, 20, 30], atol=1)


def test_weak_view_is_seeded_and_stays_in_range() -> None:
    x = torch.rand(16, 1, 48, 48)
    a = weak_view(x, torch.Generator().manual_seed(1))
    b = weak_view(x, torch.Generator().manual_seed(1))
    c = weak_view(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_reframe_view_zooms_out_without_black_bands_and_softens() -> None:
    from asm_fer.transforms import random_affine, resampling_blur

    bright = torch.full((8, 1, 48, 48), 0.8)
    out = random_affine(bright, torch.Generator().manual_seed(0), translate=0.1, scale=(0.8, 0.85), padding="border")
    assert torch.allclose(out, bright)  # what comes into view repeats the edge, never zero
    checker = (torch.arange(48).view(1, 48) + torch.arange(48).view(48, 1)) % 2
    sharp = checker.float().expand(32, 1, 48, 48)
    soft = resampling_blur(sharp, torch.Generator().manual_seed(3), p=1.0, smallest=0.5)
    assert (soft - 0.5).abs().mean() < 0.5 * (sharp - 0.5).abs().mean()
    view = weak_view(torch.rand(16, 1, 48, 48), torch.Generator().manual_seed(1), "reframe")
    assert view.min() >= 0 and view.max() <= 1
    with pytest.raises(ValueError, match="recipe or reframe"):
        weak_view(bright, torch.Generator(), "zoom")


def test_strong_view_is_seeded_in_range_and_far_from_the_input() -> None:
    from asm_fer.transforms import strong_view

    x = torch.rand(64, 1, 48, 48)
    a = strong_view(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, strong_view(x, torch.Generator().manual_seed(1)))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    weak_gap = (weak_view(x, torch.Generator().manual_seed(1)) - x).abs().mean()
    assert (a - x).abs().mean() > weak_gap
