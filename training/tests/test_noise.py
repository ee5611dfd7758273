from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from asm_fer.data.noise import apply_noise, crowd_one, save_noise, symmetric


def test_symmetric_noise_flips_the_rate_in_every_class_to_other_classes() -> None:
    labels = np.repeat(np.arange(8), 100)
    noise = symmetric(labels, 0.3, 8, np.random.default_rng(0))
    for k in range(8):
        assert noise.truly_noisy[labels == k].sum() == 30
    assert (noise.labels[noise.truly_noisy] != labels[noise.truly_noisy]).all()
    assert set(np.unique(noise.labels[noise.truly_noisy])) == set(range(8))


def test_noise_is_seeded() -> None:
    labels = np.repeat(np.arange(4), 50)
    a = apply_noise("sym-0.2", labels, np.zeros((200, 4)), 4, seed=3)
    b = apply_noise("sym-0.2", labels, np.zeros((200, 4)), 4, seed=3)
    c = apply_noise("sym-0.2", labels, np.zeros((200, 4)), 4, seed=4)
    assert np.array_equal(a.labels, b.labels) and not np.array_equal(a.labels, c.labels)
    assert a.rate == pytest.approx(0.2)


def test_crowd_one_draws_in_proportion_to_votes_and_marks_minority_votes() -> None:
    votes = np.tile([6, 4, 0], (20000, 1))
    noise = crowd_one(votes, np.random.default_rng(0))
    assert set(np.unique(noise.labels)) == {0, 1}
    assert noise.rate == pytest.approx(0.4, abs=0.02)
    assert np.array_equal(noise.truly_noisy, noise.labels == 1)


def test_crowd_one_ties_are_not_noise() -> None:
    noise = crowd_one(np.tile([5, 5, 0], (100, 1)), np.random.default_rng(0))
    assert not noise.truly_noisy.any()


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown noise protocol 'sym30'"):
        apply_noise("sym30", np.zeros(3, int), np.zeros((3, 2)), 2, 0)


def test_saved_table(tmp_path: Path) -> None:
    noise = apply_noise("sym-0.5", np.array([0, 0, 1, 1]), np.zeros((4, 2)), 2, 0)
    save_noise(noise, ["a", "b", "c", "d"], tmp_path / "noise.csv")
    lines = (tmp_path / "noise.csv").read_text().splitlines()
    assert lines[0] == "name,label,truly_noisy" and len(lines) == 5
    assert sum(int(line.split(",")[2]) for line in lines[1:]) == 2


def test_label_file_in_ferplus_format_gives_labels_and_truth(ferplus_root: Path, tmp_path: Path) -> None:
    from asm_fer.data import read_label_file, scan
    from asm_fer.data.noise import from_file

    _, samples = scan("ferplus", ferplus_root, "train")
    names = [s.path.name for s in samples]
    labels = np.array([s.label for s in samples])
    with (ferplus_root / "FER2013Train" / "label.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    first = rows[0]
    first[2:12] = ["0", "0", "0", "0", "0", "0", "0", "9", "1", "0"]  # the votes now say contempt
    with (tmp_path / "noisy.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    noise = from_file(read_label_file("ferplus", tmp_path / "noisy.csv"), names, labels)
    assert noise.truly_noisy.sum() == 1 and noise.labels[names.index(first[0])] == 7


def test_label_file_in_rafdb_format_and_missing_images(tmp_path: Path) -> None:
    from asm_fer.data import read_label_file
    from asm_fer.data.noise import from_file

    (tmp_path / "noise10.txt").write_text("train_00001.jpg 2\ntrain_00002.jpg 7\n")
    mapping = read_label_file("rafdb", tmp_path / "noise10.txt")
    assert mapping == {"train_00001_aligned.jpg": 1, "train_00002_aligned.jpg": 6}
    noise = from_file(mapping, ["train_00001_aligned.jpg", "train_00002_aligned.jpg"], np.array([0, 6]))
    assert noise.truly_noisy.tolist() == [True, False]
    with pytest.raises(ValueError, match="no label for 1 training images"):
        from_file(mapping, ["train_00003_aligned.jpg"], np.array([0]))
