from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from asm_fer.data import DatasetLayoutError, scan
from asm_fer.data.rafdb import RAFDB_CLASSES


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), (120, 80, 40)).save(path)


def _rafdb(root: Path, lines: list[str]) -> Path:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        _image(root / "Image" / "aligned" / (line.split()[0].replace(".jpg", "_aligned.jpg")))
    return root


def test_rafdb_basic_layout(tmp_path: Path) -> None:
    root = _rafdb(tmp_path, ["train_00002.jpg 7", "train_00001.jpg 1", "test_0001.jpg 4"])
    classes, train = scan("rafdb", root, "train")
    assert classes == RAFDB_CLASSES and len(classes) == 7
    assert [(s.path.name, classes[s.label]) for s in train] == [
        ("train_00001_aligned.jpg", "surprise"),
        ("train_00002_aligned.jpg", "neutral"),
    ]
    _, valid = scan("rafdb", root, "valid")
    assert [classes[s.label] for s in valid] == ["happiness"]
    assert valid[0].votes == (0, 0, 0, 1, 0, 0, 0)


@pytest.mark.parametrize(
    ("line", "message"),
    [("train_00001.jpg 8", "line 1 is 'train_00001.jpg 8'"), ("train_00001.jpg", "expected '<image name> <label 1-7>'")],
)
def test_rafdb_malformed_lines(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text(line + "\n")
    with pytest.raises(DatasetLayoutError, match=message):
        scan("rafdb", tmp_path, "train")


def test_rafdb_missing_image(tmp_path: Path) -> None:
    root = _rafdb(tmp_path, ["train_00001.jpg 1"])
    (root / "Image" / "aligned" / "train_00001_aligned.jpg").unlink()
    with pytest.raises(DatasetLayoutError, match=r"train_00001_aligned\.jpg does not exist"):
        scan("rafdb", root, "train")


def test_imagefolder(tmp_path: Path) -> None:
    for split, cls, name in [("train", "sad", "a.png"), ("train", "happy", "b.jpg"), ("valid", "sad", "c.png")]:
        _image(tmp_path / split / cls / name)
    (tmp_path / "train" / "happy" / "notes.txt").write_text("not an image")
    classes, train = scan("imagefolder", tmp_path, "train")
    assert classes == ("happy", "sad")
    assert [(s.path.name, s.label) for s in train] == [("b.jpg", 0), ("a.png", 1)]
    _, valid = scan("imagefolder", tmp_path, "valid")
    assert [(s.path.name, s.label) for s in valid] == [("c.png", 1)]


def test_imagefolder_unknown_class_in_valid(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "a" / "1.png")
    _image(tmp_path / "train" / "b" / "1.png")
    _image(tmp_path / "valid" / "c" / "1.png")
    with pytest.raises(DatasetLayoutError, match=r"class folders \['c'\] that train/ does not have"):
        scan("imagefolder", tmp_path, "valid")


def test_manifest(tmp_path: Path) -> None:
    _image(tmp_path / "img" / "1.png")
    _image(tmp_path / "img" / "2.png")
    (tmp_path / "train.csv").write_text("path,label\nimg/1.png,anger\nimg/2.png,fear\n")
    (tmp_path / "valid.csv").write_text("path,label,extra\nimg/2.png,fear,x\n")
    classes, train = scan("manifest", tmp_path, "train")
    assert classes == ("anger", "fear") and [s.label for s in train] == [0, 1]
    assert [s.label for s in scan("manifest", tmp_path, "valid")[1]] == [1]


@pytest.mark.parametrize(
    ("train_csv", "message"),
    [
        ("file,label\nimg/1.png,anger\n", "header is \\['file', 'label'\\], expected at least path,label"),
        ("path,label\nimg/9.png,anger\n", "row 2 names img/9.png, which does not exist"),
    ],
)
def test_manifest_errors(tmp_path: Path, train_csv: str, message: str) -> None:
    _image(tmp_path / "img" / "1.png")
    (tmp_path / "train.csv").write_text(train_csv)
    with pytest.raises(DatasetLayoutError, match=message):
        scan("manifest", tmp_path, "train")


def test_unknown_format() -> None:
    with pytest.raises(DatasetLayoutError, match="unknown dataset format 'voc'"):
        scan("voc", ".", "train")


def test_affectnet_csv_with_face_boxes(tmp_path: Path) -> None:
    from asm_fer.data.dataset import load_images
    from asm_fer.data.preprocess import InputSpec

    img = Image.new("RGB", (100, 100), (0, 0, 0))
    img.paste((255, 255, 255), (50, 50, 100, 100))
    (tmp_path / "Manually_Annotated_Images" / "1").mkdir(parents=True)
    img.save(tmp_path / "Manually_Annotated_Images" / "1" / "a.png")
    header = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n"
    rows = ["1/a.png,50,50,50,50,,7,0,0", "1/a.png,0,0,50,50,,1,0,0", "1/a.png,0,0,100,100,,9,0,0"]
    (tmp_path / "training.csv").write_text(header + "\n".join(rows) + "\n")
    classes, samples = scan("affectnet", tmp_path, "train")
    assert [classes[s.label] for s in samples] == ["contempt", "happiness"]  # code 9 (uncertain) dropped
    pixels = load_images(samples, InputSpec()).pixels
    assert pixels[0].min() > 250 and pixels[1].max() < 5  # each crop is its own quadrant
    classes7, samples7 = scan("affectnet7", tmp_path, "train")
    assert len(classes7) == 7 and [classes7[s.label] for s in samples7] == ["happiness"]
