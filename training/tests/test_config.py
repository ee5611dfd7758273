from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from asm_fer.config import RUNTIME_FIELDS, ConfigError, TrainConfig, add_config_arguments, config_from_args


def _parse(argv: list[str]) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_defaults_follow_the_recipe() -> None:
    cfg = _parse([])
    assert (cfg.lr, cfg.weight_decay, cfg.lr_decay, cfg.batch_size) == (1e-3, 1e-4, 0.9, 128)
    assert (cfg.t_noisy, cfg.t_clean) == (0.2, 0.8)


def test_flags_override_config_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"epochs": 5, "lr": 0.01, "widths": [8, 8]}))
    cfg = _parse(["--config", str(path), "--epochs", "7", "--blocks", "1", "1"])
    assert (cfg.epochs, cfg.lr, cfg.widths, cfg.blocks) == (7, 0.01, (8, 8), (1, 1))


def test_round_trip_and_unknown_keys() -> None:
    cfg = TrainConfig(epochs=3)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown config keys \\['epoch'\\]"):
        TrainConfig.from_dict({"epoch": 3})


def test_a_config_file_value_outside_the_choices_is_refused_by_name(tmp_path: Path) -> None:
    from asm_fer.cli import main
    from asm_fer.config import ConfigError

    with pytest.raises(ConfigError, match="strong_view must be one of man, harsh; got 'wild'"):
        TrainConfig.from_dict({"strong_view": "wild"})
    cfg = tmp_path / "run.json"
    cfg.write_text('{"method": "asmx"}')
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", str(cfg)])
    assert exc.value.code == 2


@pytest.mark.parametrize("change", [{"method": "asm"}, {"noise": "sym-0.3"}])
def test_vote_targets_are_refused_where_they_do_not_apply(change: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="--targets votes"):
        TrainConfig(targets="votes", **change)  # type: ignore[arg-type]


def test_a_bare_boolean_flag_means_true_and_strict_is_a_runtime_option() -> None:
    assert _parse(["--strict"]).strict and not _parse([]).strict
    assert not _parse(["--strict", "false", "--epochs", "2"]).strict and _parse(["--strict", "--epochs", "2"]).epochs == 2
    assert not _parse(["--log-fit", "false"]).log_fit and _parse(["--detach-mutual"]).detach_mutual
    assert "strict" in RUNTIME_FIELDS  # a run started without it resumes with it, and the other way round
