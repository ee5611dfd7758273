from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asm_fer.data.ferplus import CLASSES, DatasetLayoutError, majority_label, scan_ferplus


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], 0),  # plain majority
        ([0, 3, 3, 0, 0, 0, 0, 0, 4, 0], None),  # unknown majority: dropped
        ([0, 3, 0, 0, 0, 0, 0, 0, 0, 3], None),  # NF ties the top emotion: dropped
        ([0, 0, 4, 4, 0, 0, 0, 0, 2, 0], 2),  # tie between emotions: first in column order
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], None),  # no votes
        ([0, 0, 0, 0, 0, 0, 0, 1, 0, 0], 7),  # contempt, the last class
    ],
)
def test_majority_label(votes: list[int], expected: int | None) -> None:
    assert majority_label(np.array(votes)) == expected


def test_scan_keeps_planted_labels_and_drops_unknown(ferplus_root: Path) -> None:
    train = scan_ferplus(ferplus_root, "train")
    assert len(train) == 10 * len(CLASSES)  # the unknown-majority row is dropped
    assert [s.label for s in train] == [k for k in range(len(CLASSES)) for _ in range(10)]
    assert all(len(s.votes) == len(CLASSES) and s.votes[s.label] == max(s.votes) for s in train)
    assert [s.path.name for s in train] == sorted(s.path.name for s in train)


def _write_split(root: Path, rows: list[str]) -> Path:
    folder = root / "FER2013Train"
    folder.mkdir(parents=True)
    Image.new("L", (48, 48)).save(folder / "a.png")
    (folder / "label.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('a.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0', "row 1 has 11 columns, expected 12"),
        ('a.png,"(0, 0, 48, 48)",4,0,x,1,3,2,0,0,0,0', "row 1 has a non-integer vote count"),
        ('a.png,"(0, 0, 48, 48)",9,0,0,1,3,2,0,0,0,0', "summing to at most 10"),
        ('b.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0', "row 1 names b.png, which is not in"),
    ],
)
def test_malformed_rows_name_file_row_and_expectation(tmp_path: Path, row: str, message: str) -> None:
    root = _write_split(tmp_path, [row])
    with pytest.raises(DatasetLayoutError, match=r"label\.csv") as err:
        scan_ferplus(root, "train")
    assert message in str(err.value)


def test_missing_layout_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"FER2013Valid/label\.csv"):
        scan_ferplus(tmp_path, "valid")
    with pytest.raises(DatasetLayoutError, match="unknown FER\\+ split"):
        scan_ferplus(tmp_path, "dev")
