"""Checkpoints pickle `MiningState` by module path; those written before the package was grouped by stage (issue
30), under `asm_fer.asm`, still load and resume through the real loading code."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from asm_fer.checkpoints import CHECKPOINT, load_checkpoint, load_trained, valid_scope
from asm_fer.config import TrainConfig
from asm_fer.fixtures import tiny_config
from asm_fer.method.asm import MiningState
from asm_fer.train import train


def save_as_before_the_moves(ckpt: dict[str, object], path: Path) -> None:
    """torch.save `ckpt` with MiningState pickled as `asm_fer.asm.MiningState`, as the older layout wrote it."""
    old = types.ModuleType("asm_fer.asm")
    old.MiningState = MiningState  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "asm_fer.asm", old)
        mp.setattr(MiningState, "__module__", "asm_fer.asm")
        torch.save(ckpt, path)


def test_a_checkpoint_pickled_under_the_old_module_path_loads_and_resumes(
    ferplus_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = dataclasses.replace(tiny_config(ferplus_root, tmp_path / "run"), method="asm", warmup_epochs=1, epochs=3)
    train(dataclasses.replace(cfg, epochs=2))
    path = Path(cfg.run_dir) / CHECKPOINT
    ckpt = torch.load(path, weights_only=False)
    ckpt["config"]["epochs"] = cfg.epochs  # continue the same run with its full schedule
    mined = ckpt["mining"]
    assert mined.means is not None and mined.epoch == 2
    save_as_before_the_moves(ckpt, path)
    # an older install may still hold an importable asm_fer/asm.py (an editable install of another checkout does):
    # the old path must not be what makes these loads work
    monkeypatch.setitem(sys.modules, "asm_fer.asm", None)

    with zipfile.ZipFile(path) as z:
        pickled = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert b"asm_fer.asm\nMiningState" in pickled and b"asm_fer.method.asm" not in pickled
    with pytest.raises(ModuleNotFoundError, match=r"asm_fer\.asm"):
        torch.load(path, weights_only=False)  # plain pickle cannot find the class any more

    state = load_checkpoint(path)["mining"]
    assert isinstance(state, MiningState) and state.epoch == mined.epoch
    assert np.array_equal(state.means, mined.means) and np.array_equal(state.thresholds, mined.thresholds)

    _, _, final = load_trained(train(cfg))  # resume goes through checkpoints.restore
    rows = [json.loads(line) for line in (Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert final["threshold_learning"]["epoch"] == 3


@pytest.mark.parametrize(
    ("limits", "images", "scope"),
    [
        ({}, 3526, "on all 3526 Valid images"),
        ({"limit": 500}, 501, "on 501 of 3526 Valid images (a class-stratified subset: --limit 500; --valid-limit 0 "),
        ({"limit": 500, "valid_limit": 800}, 799, "on 799 of 3526 Valid images (a class-stratified subset: --valid-limit 800;"),
        ({"limit": 500, "valid_limit": 0}, 3526, "on all 3526 Valid images"),
        ({"limit": 5000}, 3526, "on all 3526 Valid images"),  # a limit above the split's size keeps all of it
    ],
)
def test_the_final_accuracy_names_what_it_was_measured_on(limits: dict[str, int], images: int, scope: str) -> None:
    assert valid_scope(dataclasses.replace(TrainConfig(), **limits), images, 3526).startswith(scope)
