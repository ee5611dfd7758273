"""What a config assembles before the first epoch: the images (with the noisy labels to train on and the
held-out calibration split) and the freshly initialised networks. Where a run starts from and what it
writes along the way is `checkpoints.py`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import TrainConfig
from .data import read_label_file, scan
from .data.dataset import ImageSet, calibration_split, load_images, stratified_limit
from .data.noise import apply_noise, from_file, save_noise
from .data.preprocess import InputSpec
from .models.dlib_classifier import dlib_classifier
from .models.resnet import ResNet

CALIBRATION_IDS = "calibration.txt"


@dataclass
class Data:
    classes: tuple[str, ...]
    train: ImageSet  # labels are the (possibly noisy) labels to train on
    valid: ImageSet
    truly_noisy: np.ndarray  # (N_train,) bool mask of wrong training labels
    true_labels: np.ndarray  # (N_train,) the dataset's own (clean / majority) labels
    # the held-out calibration split (--calibration), with the dataset's own labels and votes; None without one
    calibration: ImageSet | None = None
    valid_total: int = 0  # images in the whole Valid split, before --limit / --valid-limit


def input_spec(cfg: TrainConfig) -> InputSpec:
    c = cfg.channels
    return InputSpec(channels=c, height=cfg.input_size, width=cfg.input_size, mean=(0.5,) * c, std=(0.5,) * c)


def load_data(cfg: TrainConfig, *, save_labels: bool = True) -> Data:
    spec = input_spec(cfg)
    classes, train_samples = scan(cfg.dataset, cfg.data, "train")
    _, valid_samples = scan(cfg.dataset, cfg.data, "valid")
    valid_total = len(valid_samples)
    train_samples = stratified_limit(train_samples, cfg.limit, cfg.seed)
    valid_samples = stratified_limit(valid_samples, cfg.limit if cfg.valid_limit < 0 else cfg.valid_limit, cfg.seed)
    # carved out before anything is trained, so no network of the run ever sees these images
    train_samples, calibration_samples = calibration_split(train_samples, cfg.calibration, cfg.seed, cfg.fold)
    train = load_images(train_samples, spec, desc="decode train")
    if cfg.noise.startswith("file:"):
        noise = from_file(read_label_file(cfg.dataset, cfg.noise[5:]), train.names, train.labels.numpy())
    else:
        noise = apply_noise(cfg.noise, train.labels.numpy(), train.votes, len(classes), cfg.seed)
    true_labels = train.labels.numpy().copy()
    train.labels = torch.from_numpy(noise.labels)
    if save_labels:
        run = Path(cfg.run_dir)
        run.mkdir(parents=True, exist_ok=True)
        save_noise(noise, train.names, run / "labels.csv")
        if calibration_samples:
            (run / CALIBRATION_IDS).write_text("".join(f"{s.path.name}\n" for s in calibration_samples))
    held = f", calibration {len(calibration_samples)} held out" if calibration_samples else ""
    print(f"train {len(train)} images ({cfg.noise}: {noise.rate:.1%} wrong labels){held}, valid {len(valid_samples)}")
    calibration = load_images(calibration_samples, spec, desc="decode calibration") if calibration_samples else None
    valid = load_images(valid_samples, spec, desc="decode valid")
    return Data(classes, train, valid, noise.truly_noisy, true_labels, calibration, valid_total)


def build_nets(cfg: TrainConfig, num_classes: int, *, pretrained: bool = True) -> list[nn.Module]:
    """The run's networks, freshly initialised; a dlib backbone holds face-api's weights unless
    `pretrained` is false (the caller loads a checkpoint over it)."""
    if cfg.backbone == "dlib-resnet":
        spec = input_spec(cfg)
        return [
            dlib_classifier(
                num_classes,
                in_channels=cfg.channels,
                size=cfg.backbone_size,
                mean=spec.mean[0],
                std=spec.std[0],
                dropout=cfg.dropout,
                freeze_stages=cfg.freeze_stages,
                pretrained=pretrained,
            )
            for _ in range(cfg.networks)
        ]
    return [
        ResNet(
            num_classes,
            in_channels=cfg.channels,
            widths=cfg.widths,
            blocks=cfg.blocks,
            stem_stride=cfg.stem_stride,
            dropout=cfg.dropout,
        )
        for _ in range(cfg.networks)
    ]
