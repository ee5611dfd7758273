from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from asm_fer.data.preprocess import InputSpec, load_pixels, preprocess_file
from asm_fer.data.views import weak_view

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
    from asm_fer.data.views import random_affine, resampling_blur

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


def test_strong_view_is_seeded_in_range_and_changes_the_image() -> None:
    from asm_fer.data.views import strong_view

    x = torch.rand(64, 1, 48, 48)
    a = strong_view(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, strong_view(x, torch.Generator().manual_seed(1)))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert (a != x).flatten(1).any(1).all()  # the cutout at least
    # the earlier view moves images further than the weak view does; MAN's milder one does not
    weak_gap = (weak_view(x, torch.Generator().manual_seed(1)) - x).abs().mean()
    assert (strong_view(x, torch.Generator().manual_seed(1), "harsh") - x).abs().mean() > weak_gap
    with pytest.raises(ValueError, match="strong view must be one of"):
        strong_view(x, torch.Generator(), "wild")


def test_strong_view_magnitudes_stay_inside_the_stated_bounds() -> None:
    from asm_fer.data.views import STRONG_VIEWS, _geometric, _photometric

    view = STRONG_VIEWS["man"]
    gen = torch.Generator().manual_seed(0)
    # translate: a bright dot moves by at most view.translate x the side (2.2 px of 48)
    dot = torch.zeros(200, 1, 48, 48)
    dot[:, :, 24, 24] = 1
    for op, axis in (("translate_x", 3), ("translate_y", 2)):
        moved = _geometric(dot, gen, op, view)
        centre = (moved.sum(dim=(1, 2 if axis == 3 else 3)).squeeze(1) * torch.arange(48)).sum(1) / moved.sum(dim=(1, 2, 3))
        shift = (centre - 24).abs()
        assert shift.max() <= view.translate * 48 + 0.51 and shift.max() >= 0.5 * view.translate * 48 - 0.51
    # brightness: the factor stays within 1 +- view.enhance
    grey = torch.full((200, 1, 48, 48), 0.5)
    ratio = _photometric(grey, gen, "brightness", view)[:, 0, 0, 0] / 0.5
    assert ratio.min() >= 1 - view.enhance - 1e-6 and ratio.max() <= 1 + view.enhance + 1e-6
    # posterize: at most 2^4 grey levels
    assert len(torch.unique(_photometric(torch.rand(4, 1, 48, 48), gen, "posterize", view))) <= 16
    assert "solarize" not in view.pool and "identity" in view.pool


def test_strong_view_cutout_covers_about_half_a_percent_and_ops_are_skipped_at_p() -> None:
    from asm_fer.data.views import STRONG_VIEWS, StrongView, strong_view

    x = torch.zeros(300, 1, 48, 48)
    only_cutout = dataclasses.replace(STRONG_VIEWS["man"], ops=0)
    grey = (strong_view(x, torch.Generator().manual_seed(0), only_cutout) == 0.5).flatten(1).sum(1)
    assert grey.max() <= 9 and (grey / 48**2).max() <= 0.005  # a 3 x 3 square at most, cut by the border
    # with p = 0.5 per round, both rounds are skipped for a quarter of the samples
    x = torch.rand(2000, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    kept = StrongView(cutout=0.0)
    out = strong_view(x, torch.Generator().manual_seed(2), kept)
    same = float(((out == x).flatten(1).all(1) | (out == x.flip(-1)).flatten(1).all(1)).float().mean())
    expected = (0.5 + 0.5 / len(kept.pool)) ** 2  # each round skipped, or taken with identity drawn
    assert same == pytest.approx(expected, abs=0.04)


def test_harsh_strong_view_is_the_earlier_one() -> None:
    from asm_fer.data.views import STRONG_VIEWS

    harsh = STRONG_VIEWS["harsh"]
    assert (harsh.p, harsh.translate, harsh.cutout, harsh.posterize_bits) == (1.0, 0.3, 0.5, (2, 3))
    assert "solarize" in harsh.pool and "identity" not in harsh.pool


@pytest.mark.parametrize("view", ["weak-recipe", "weak-reframe", "strong-man", "strong-harsh"])
def test_views_are_made_on_the_images_device_from_the_cpu_generator(view: str) -> None:
    """On CUDA the trainer augments on the GPU: every random draw stays on the seeded CPU generator and is moved to
    the images' device. The meta device stands in for CUDA here: a CPU tensor of more than 0 dimensions mixed with
    a tensor on another device fails there as it does on CUDA (the earlier views did, at their first torch.where)."""
    from asm_fer.data.preprocess import normalise
    from asm_fer.data.views import strong_view

    kind, name = view.split("-")
    x = torch.rand(24, 1, 48, 48)
    make = (lambda im, g: weak_view(im, g, name)) if kind == "weak" else (lambda im, g: strong_view(im, g, name))
    out = make(x.to("meta"), torch.Generator().manual_seed(3))
    assert out.device.type == "meta" and out.shape == x.shape
    spec = InputSpec(channels=1, height=48, width=48, mean=(0.5,), std=(0.5,))
    assert normalise(out * 255, spec).device.type == "meta"
    # the same draws on the CPU: the stream does not depend on where the images are
    g = torch.Generator().manual_seed(3)
    make(x, g)
    g_meta = torch.Generator().manual_seed(3)
    make(x.to("meta"), g_meta)
    assert torch.equal(g.get_state(), g_meta.get_state())
