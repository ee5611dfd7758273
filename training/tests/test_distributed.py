from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from asm_fer.distributed import World


def test_shards_are_disjoint_and_even_shards_are_equal() -> None:
    idx = torch.arange(11)
    even = [World(r, 3).shard(idx, even=True) for r in range(3)]
    assert [len(s) for s in even] == [3, 3, 3]
    covering = torch.cat([World(r, 3).shard(idx, even=False) for r in range(3)])
    assert sorted(covering.tolist()) == list(range(11))


def test_two_gloo_processes_train_and_mine_the_whole_set(ferplus_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "asm_fer",
        "train",
        "--data",
        str(ferplus_root),
        "--method",
        "asm",
        "--noise",
        "sym-0.3",
        "--warmup",
        "1",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--widths",
        "8",
        "16",
        "16",
        "16",
        "--blocks",
        "1",
        "1",
        "1",
        "1",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--run-dir",
        str(run),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 1 of 2" in done.stdout and "rank 0 of 2" in done.stdout
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # rank 0 alone writes
    mined = rows[1]
    assert sum(mined["subsets"].values()) == 80  # every training sample, though each rank mined half
    assert sum(sum(c.values()) for c in mined["subsets_per_class"].values()) == 80
    assert (run / "final.pt").exists()
    assert (run / "bundle" / "model.json").exists()  # exported by rank 0 alone, into the run folder by default
