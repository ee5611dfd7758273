from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from asm_fer import device
from asm_fer.checkpoints import CHECKPOINT, load_trained
from asm_fer.cli import main
from asm_fer.config import ConfigError, RunError
from asm_fer.data.preprocess import normalise
from asm_fer.data.views import weak_view
from asm_fer.device import autocast, resolve_device
from asm_fer.fixtures import tiny_config
from asm_fer.models.resnet import ResNet, load_torchvision_weights
from asm_fer.run import input_spec
from asm_fer.train import train


def test_interrupted_run_resumes_to_the_same_weights(ferplus_root: Path, tmp_path: Path) -> None:
    straight = dataclasses.replace(tiny_config(ferplus_root, tmp_path / "straight"), epochs=3)
    _, nets_a, _ = load_trained(train(straight))

    resumed = dataclasses.replace(straight, run_dir=str(tmp_path / "resumed"))
    train(dataclasses.replace(resumed, epochs=2))
    ckpt = torch.load(Path(resumed.run_dir) / CHECKPOINT, weights_only=False)
    ckpt["config"]["epochs"] = resumed.epochs  # continue the same run with its full schedule
    torch.save(ckpt, Path(resumed.run_dir) / CHECKPOINT)
    _, nets_b, final = load_trained(train(resumed))

    for a, b in zip(nets_a[0].state_dict().values(), nets_b[0].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    rows = [json.loads(line) for line in (Path(resumed.run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert {"loss", "valid_accuracy", "images_per_second"} <= set(rows[-1])
    assert len(final["thresholds"]) == 8
    assert (Path(resumed.run_dir) / "curves.png").stat().st_size > 1000


def test_planted_classes_are_learned(ferplus_root: Path, tmp_path: Path) -> None:
    _, _, final = load_trained(train(tiny_config(ferplus_root, tmp_path / "run")))
    assert final["valid"]["accuracy"] > 0.4  # chance is 1/8; seeds 0 and 1 reach 0.62-0.70


def test_vote_targets_train_on_the_crowd_distribution(ferplus_root: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tiny_config(ferplus_root, tmp_path / "votes"), targets="votes")
    _, _, final = load_trained(train(cfg))
    assert final["valid"]["accuracy"] > 0.4  # the planted label is each image's strict majority vote
    assert json.loads((tmp_path / "votes" / "config.json").read_text())["targets"] == "votes"


def test_asm_mines_planted_noise_better_than_chance(ferplus_root: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(
        tiny_config(ferplus_root, tmp_path / "asm"), method="asm", noise="sym-0.3", warmup_epochs=8, epochs=12
    )
    _, nets, final = load_trained(train(cfg))
    rows = [json.loads(line) for line in (Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines()]
    mined = [r for r in rows if "mining" in r]
    assert [r["epoch"] for r in mined] == [9, 10, 11, 12]
    assert sum(mined[-1]["subsets"].values()) == 80
    assert mined[-1]["mining"]["precision"] > 0.3  # the planted noise rate
    assert {"loss_sup", "loss_mut", "loss_usc"} <= set(mined[-1])
    assert all(r["mining_seconds"] > 0 for r in mined) and "mining_seconds" not in rows[0]
    assert len(nets) == 2
    assert (Path(cfg.run_dir) / "mining.png").stat().st_size > 1000
    assert final["threshold_learning"]["epoch"] == 12
    exported = [[t["noisy"], t["clean"]] for t in mined[-1]["thresholds"].values()]
    assert final["thresholds"] == exported
    labels = (Path(cfg.run_dir) / "labels.csv").read_text().splitlines()
    assert sum(int(line.split(",")[2]) for line in labels[1:]) == 24


def test_resume_may_change_device_and_threads_but_not_the_recipe(ferplus_root: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tiny_config(ferplus_root, tmp_path / "run"), epochs=1)
    train(cfg)
    train(dataclasses.replace(cfg, device="cpu", threads=2))
    with pytest.raises(RunError, match="different config"):
        train(dataclasses.replace(cfg, lr=0.5))


def test_bf16_autocast_runs_convolutions_in_bf16_on_the_cpu_only_when_asked() -> None:
    conv, x = torch.nn.Conv2d(1, 4, 3), torch.randn(2, 1, 8, 8)
    cpu = torch.device("cpu")
    with autocast(cpu, "bf16"):
        assert conv(x).dtype == torch.bfloat16
    for precision in ("auto", "fp32"):
        with autocast(cpu, precision):
            assert conv(x).dtype == torch.float32
    with pytest.raises(ValueError, match="precision must be"), autocast(cpu, "fp16"):
        pass


def test_asm_trains_in_bf16_and_a_run_cannot_resume_in_another_precision(ferplus_root: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tiny_config(ferplus_root, tmp_path / "bf16"), method="asm", precision="bf16")
    _, _, final = load_trained(train(cfg))
    assert final["valid"]["accuracy"] > 0.4  # as the fp32 runs: bf16 forward passes, fp32 weights and losses
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["precision"] == "bf16"
    with pytest.raises(RunError, match="different config"):
        train(dataclasses.replace(cfg, precision="fp32"))


@pytest.mark.parametrize(
    ("units", "speedup", "chosen"),
    [(False, 9.0, "fp32"), (True, 0.04, "fp32"), (True, 2.2, "bf16")],
)
def test_auto_precision_takes_bf16_only_with_bf16_units_and_a_measured_gain(
    monkeypatch: pytest.MonkeyPatch, units: bool, speedup: float, chosen: str
) -> None:
    """The AMX Xeon (2.2x) trains in bf16; the AVX2-only EPYC (0.04x, reference kernels) and any CPU without
    bf16 units stay fp32; CUDA is bf16; a concrete --precision is never second-guessed."""
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: units)
    monkeypatch.setattr(device, "bf16_speedup", lambda: speedup)
    assert device.resolve_precision("auto", torch.device("cpu")) == chosen
    assert device.resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert device.resolve_precision("fp32", torch.device("cuda")) == "fp32"


def test_an_auto_run_records_its_precision_and_machine_and_resumes_in_it(
    ferplus_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = dataclasses.replace(tiny_config(ferplus_root, tmp_path / "auto"), epochs=2, precision="auto")
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: False)
    train(dataclasses.replace(cfg, epochs=1))
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["precision"] == "fp32"
    # the same run resumed on a machine whose timing would pick bf16 keeps the arithmetic it began with
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    monkeypatch.setattr(device, "bf16_speedup", lambda: 2.2)
    ckpt = torch.load(tmp_path / "auto" / CHECKPOINT, weights_only=False)
    ckpt["config"]["epochs"] = 2
    torch.save(ckpt, tmp_path / "auto" / CHECKPOINT)
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "auto" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["machine"]["capability"] == torch.backends.cpu.get_cpu_capability() and r["machine"]["cpu"] for r in rows)
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["precision"] == "fp32"


def test_cuda_requested_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="sees no CUDA device"):
            resolve_device("cuda")


def test_per_network_source_exports_the_mean_of_the_networks_thresholds(ferplus_root: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(
        tiny_config(ferplus_root, tmp_path / "pn"), method="asm", source="per-network", warmup_epochs=1, epochs=2
    )
    _, _, final = load_trained(train(cfg))
    state = torch.load(Path(cfg.run_dir) / CHECKPOINT, weights_only=False)["mining"]
    assert state.net_means.shape == (2, 8)
    assert final["threshold_learning"]["source"] == "per-network"
    assert final["class_means"] == pytest.approx(state.net_means.mean(0).tolist())


def test_a_run_warm_started_from_a_ce2_warm_up_equals_the_run_done_straight(ferplus_root: Path, tmp_path: Path) -> None:
    asm = dataclasses.replace(
        tiny_config(ferplus_root, tmp_path / "straight"), method="asm", noise="sym-0.3", warmup_epochs=2, epochs=3
    )
    _, straight, _ = load_trained(train(asm))
    ce2 = dataclasses.replace(asm, method="ce2", run_dir=str(tmp_path / "ce2"), keep_epochs=(2,))
    train(ce2)
    forked = dataclasses.replace(asm, run_dir=str(tmp_path / "forked"), warm_start=str(tmp_path / "ce2" / "epoch-02.pt"))
    _, nets, final = load_trained(train(forked))

    for a, b in zip(straight, nets, strict=True):
        for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
            assert torch.equal(pa, pb)
    rows = [json.loads(line) for line in (tmp_path / "forked" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("from")) for r in rows] == [(1, str(tmp_path / "ce2")), (2, str(tmp_path / "ce2")), (3, None)]
    assert "thresholds" in rows[2]
    assert final["threshold_learning"]["epoch"] == 3
    assert sorted(p.name for p in (tmp_path / "ce2").glob("epoch-*.pt")) == ["epoch-02.pt"]


def test_warm_start_refuses_a_checkpoint_that_is_not_this_runs_warm_up(ferplus_root: Path, tmp_path: Path) -> None:
    ce2 = dataclasses.replace(
        tiny_config(ferplus_root, tmp_path / "ce2"), method="ce2", noise="sym-0.3", epochs=2, keep_epochs=(1, 2)
    )
    train(ce2)
    asm = dataclasses.replace(ce2, method="asm", warmup_epochs=1, keep_epochs=(), run_dir=str(tmp_path / "asm"))
    with pytest.raises(RunError, match="differs in noise"):
        train(dataclasses.replace(asm, noise="sym-0.2", warm_start=str(tmp_path / "ce2" / "epoch-01.pt")))
    with pytest.raises(RunError, match="past this run's warm-up"):
        train(dataclasses.replace(asm, warm_start=str(tmp_path / "ce2" / "epoch-02.pt")))
    with pytest.raises(RunError, match="no such checkpoint"):
        train(dataclasses.replace(asm, warm_start=str(tmp_path / "ce2" / "epoch-07.pt")))
    with pytest.raises(RunError, match="two networks"):
        train(dataclasses.replace(asm, method="ce", warm_start=str(tmp_path / "ce2" / "epoch-01.pt")))


def test_pretrained_torchvision_weights_start_both_networks(ferplus_root: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(tiny_config(ferplus_root, tmp_path / "run"), method="ce2", epochs=1, lr=0.0, weight_decay=0.0)
    donor = ResNet(5, in_channels=3, widths=cfg.widths, blocks=cfg.blocks)  # another stem and classifier
    named = {re.sub(r"^stages\.(\d+)\.", lambda m: f"layer{int(m.group(1)) + 1}.", k): v for k, v in donor.state_dict().items()}
    torch.save(named, tmp_path / "resnet.pth")
    _, nets, _ = load_trained(train(dataclasses.replace(cfg, pretrained=str(tmp_path / "resnet.pth"))))

    block = "stages.2.0.conv1.weight"
    for net in nets:  # lr 0: what the networks end with is what they started from
        assert torch.equal(net.state_dict()[block], donor.state_dict()[block])
        assert net.state_dict()["conv1.weight"].shape == (cfg.widths[0], 1, 3, 3)
    with pytest.raises(ValueError, match="no counterpart"):
        load_torchvision_weights(nets[0], {"features.0.weight": torch.zeros(1)})
    assert sorted(load_torchvision_weights(nets[0], named)) == ["conv1.weight", "fc.bias", "fc.weight"]


def test_pretrained_run_checkpoint_fine_tunes_with_the_reframe_view(ferplus_root: Path, tmp_path: Path) -> None:
    parent = dataclasses.replace(tiny_config(ferplus_root, tmp_path / "ce"), epochs=1)
    _, (donor,), _ = load_trained(train(parent))
    child = dataclasses.replace(
        parent, method="ce2", lr=0.0, weight_decay=0.0, weak_view="reframe", pretrained=str(tmp_path / "ce" / "final.pt")
    )
    _, nets, _ = load_trained(train(dataclasses.replace(child, run_dir=str(tmp_path / "child"))))
    for net in nets:  # lr 0: both networks keep the one network they were seeded with
        for name, value in donor.state_dict().items():
            if name.endswith((".weight", ".bias")):  # parameters; batch-norm statistics still move
                assert torch.equal(net.state_dict()[name], value), name
    with pytest.raises(RuntimeError, match="size mismatch"):
        train(dataclasses.replace(child, widths=(8, 8, 8, 8), run_dir=str(tmp_path / "narrow")))


def test_stability_term_is_logged_and_keeps_plain_and_reframed_predictions_closer(ferplus_root: Path, tmp_path: Path) -> None:
    base = dataclasses.replace(tiny_config(ferplus_root, tmp_path / "off"), weak_view="reframe", epochs=2)
    spec = input_spec(base)
    x = torch.rand(64, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    moved_x = weak_view(x, torch.Generator().manual_seed(0), "reframe")
    gaps = []
    for weight in (0.0, 5.0):  # the same images and views for both networks
        run = dataclasses.replace(base, stability=weight, run_dir=str(tmp_path / f"w{weight}"))
        _, (net,), _ = load_trained(train(run))
        with torch.no_grad():
            plain = torch.softmax(net(normalise(x * 255, spec)), 1)
            moved = torch.softmax(net(normalise(moved_x * 255, spec)), 1)
        gaps.append(float((plain - moved).abs().sum(1).mean()))
        rows = [json.loads(line) for line in (Path(run.run_dir) / "metrics.jsonl").read_text().splitlines()]
        assert ("loss_stability" in rows[-1]) == (weight > 0)
    assert gaps[1] < gaps[0]
    with pytest.raises(ConfigError, match="ce and ce2"):
        train(dataclasses.replace(base, method="asm", stability=1.0, run_dir=str(tmp_path / "asm")))


def test_the_cli_turns_a_run_error_into_one_line_and_status_2(
    ferplus_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing.pt"
    args = ["train", "--data", str(ferplus_root), "--run-dir", str(tmp_path / "run"), "--warm-start", str(missing)]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--method", "asm", "--input-size", "24", "--widths", "4", "8", "8", "8", "--blocks", "1", "1", "1", "1"])
    assert exc.value.code == 2
    # the last line of stderr: the decoding progress bars come before it
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.splitlines()[-1] == f"asm-fer: error: --warm-start {missing}: no such checkpoint"


def test_a_collapsed_mining_epoch_is_one_warning_line_and_under_strict_an_error_the_run_resumes_from(
    ferplus_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the quick try of issue 34 at fixture size: one warm-up epoch leaves the networks near chance
    cfg = dataclasses.replace(
        tiny_config(ferplus_root, tmp_path / "run"), method="asm", noise="sym-0.3", warmup_epochs=1, epochs=2
    )
    with pytest.raises(RunError, match=r"^mining epoch 2 put 80 of 80 samples in noisy: the networks are barely trained"):
        train(dataclasses.replace(cfg, strict=True))
    metrics = Path(cfg.run_dir) / "metrics.jsonl"
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1]
    capsys.readouterr()

    train(cfg)  # --strict is a runtime option: the same run resumes without it, and warns
    out = capsys.readouterr().out.splitlines()
    assert f"resuming {cfg.run_dir} at epoch 2" in out
    warnings = [line for line in out if line.startswith("warning:")]
    assert len(warnings) == 1 and "in noisy" in warnings[0] and "Options: a longer --warmup-epochs" in warnings[0]
    row = json.loads(metrics.read_text().splitlines()[-1])
    assert row["warnings"] == [warnings[0].removeprefix("warning: ")]
    assert row["subsets"] == {"clean": 0, "ambiguous": 0, "noisy": 80}
    epoch_line = json.loads(next(line for line in out if line.startswith('{"epoch": 2')))
    assert "warnings" not in epoch_line  # it has a line of its own
    assert set(epoch_line["mining"]) == {"precision", "recall", "f1"} and set(epoch_line["fit"]) == {
        "wrong",
        "wrong_true",
        "right",
    }
    assert epoch_line["mining"]["precision"] == round(row["mining"]["precision"], 3)
    assert re.fullmatch(r"final: Valid accuracy 0\.\d{4} on all \d+ Valid images; thresholds in .*final\.pt", out[-1])
