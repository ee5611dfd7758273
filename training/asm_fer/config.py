"""The one training configuration: a frozen dataclass whose defaults mirror the paper's recipe, the
command-line flags generated from it, and JSON round-trips for run folders, checkpoints and bundles.

Precedence: defaults < `--config run.json` < explicit flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A config value or key that is not allowed (the message names it and what is)."""


class RunError(ValueError):
    """A run that cannot start, resume or fine-tune as asked: its run folder, checkpoint or parent run disagrees
    with the config (the message names the file and what differs)."""


# the one list of training precisions: the --precision choices and device.autocast's check
Precision = Literal["auto", "fp32", "bf16"]

RECIPE_EPOCHS = 100  # MAN's schedule: 100 epochs, lr x0.9 per epoch, the lambda ramp over E = 100


@dataclass(frozen=True)
class TrainConfig:
    # data
    data: str = field(default="../shared/data/ferplus", metadata={"help": "dataset root (FER+ layout)"})
    dataset: Literal["ferplus", "rafdb", "affectnet", "affectnet7", "imagefolder", "manifest"] = field(
        default="ferplus",
        metadata={
            "help": "dataset layout",
            "aliases": ["--format"],
        },
    )
    noise: str = field(
        default="none",
        metadata={"help": "label noise: none | sym-<r> (e.g. sym-0.3) | crowd-1 | file:<label file in the dataset's format>"},
    )
    limit: int = field(default=0, metadata={"help": "train on a class-stratified subset of about N samples (0 = all)"})
    valid_limit: int = field(
        default=-1, metadata={"help": "validate on a class-stratified subset of about N samples (-1 = as --limit, 0 = all)"}
    )
    calibration: float = field(
        default=0.0,
        metadata={
            "help": "hold out this share of the training set (class-stratified, seeded by --seed, ids in "
            "RUN/calibration.txt), never trained on: the exporter learns the thresholds, the temperature and the "
            "per-class reliability of the verdict on it, out of sample (issue 17; 0 = none, e.g. 0.1)"
        },
    )
    calibration_fold: str = field(
        default="",
        metadata={
            "help": "hold out fold I of K class-stratified folds of the training set (I/K, I from 0; seeded by --seed) "
            "instead of a --calibration share: K runs with I = 0..K-1 together hold out every training image "
            "exactly once, and `asm-fer export --crossfit RUN...` pools their out-of-fold probabilities into "
            "cross-fitted thresholds, temperature and reliability (issue 17)"
        },
    )
    # model and input
    method: Literal["ce", "ce2", "asm", "asm-fixed", "codivision", "oracle"] = field(
        default="ce",
        metadata={
            "help": "ce: one network, CE; ce2: two networks, CE, ensembled; asm: adaptive thresholds + tri-regularisation; "
            "asm-fixed: asm with fixed [T_n, T_c]; codivision: MAN's co-division mining + tri-regularisation; "
            "oracle: tri-regularisation on the true noise mask (clean = right labels, noisy = wrong ones; a control "
            "that needs a known mask: sym-<r> or crowd-1 noise)",
        },
    )
    widths: tuple[int, ...] = field(default=(32, 64, 128, 256), metadata={"help": "channels per ResNet stage"})
    blocks: tuple[int, ...] = field(default=(2, 2, 2, 2), metadata={"help": "BasicBlocks per stage (ResNet-18: 2 2 2 2)"})
    stem_stride: int = field(default=2, metadata={"help": "stride of the 3x3 stem (2 keeps 48x48 training CPU-sized)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout before the classifier"})
    # face-pretrained backbone (issue 16, 2b): the paper starts both networks from a face-recognition ResNet
    backbone: Literal["resnet", "dlib-resnet"] = field(
        default="resnet",
        metadata={
            "help": "resnet: the ResNet of --widths/--blocks/--stem-stride; dlib-resnet: dlib's face-descriptor ResNet "
            "(5.6 M parameters, weights from node_modules/@vladmandic/face-api: `npm ci`) with a head on all its stages",
        },
    )
    backbone_size: int = field(
        default=112,
        metadata={"help": "dlib-resnet: side the input is resized to inside the network (dlib: 150, works from 104; min 103)"},
    )
    freeze_stages: int = field(
        default=0,
        metadata={
            "help": "dlib-resnet: keep the stem and the first N of the five stages at their pretrained weights (no "
            "backward through them: at 112 px on one AVX2 core a training step runs 1.25x faster with N = 1 and 1.6x with "
            "N = 2; the paper fine-tunes everything, N = 0; docs/results.md, issue 29, has what each costs in accuracy)"
        },
    )
    backbone_lr: float = field(
        default=5e-5,
        metadata={"help": "dlib-resnet: Adam rate of the pretrained backbone, --lr is the head's (probe: 3e-4 diverged)"},
    )
    pretrained: str = field(
        default="",
        metadata={
            "help": "weights to start from: another run's checkpoint (RUN/final.pt, same network: fine-tuning) or "
            "torchvision-named ResNet weights (.pth state dict, e.g. a face-recognition ResNet-18 with "
            "--widths 64 128 256 512), whose tensors of another shape (stem, classifier) keep their "
            "initialisation and are listed"
        },
    )
    weak_view: Literal["recipe", "reframe"] = field(
        default="recipe",
        metadata={
            "help": "training view: recipe (MAN's weak view) | reframe (adds zoom out/in, roll and resampling blur, "
            "so that crops of a face detector read like FER2013's own; issue 8)",
        },
    )
    targets: Literal["label", "votes"] = field(
        default="label",
        metadata={
            "help": "ce/ce2 without injected noise: label (cross-entropy on each image's majority label) | votes "
            "(cross-entropy against its crowd vote distribution, FER+'s 'crossentropy' scheme), so that p(k) "
            "estimates the share of annotators who would say k, which is what an audit of one annotator's "
            "vote needs (issue 17)"
        },
    )
    stability: float = field(
        default=0.0,
        metadata={
            "help": "ce/ce2: weight of a symmetric KL between each network's outputs on the plain image and on its "
            "weak view (stability training), so predictions hold when a crop is framed or resampled "
            "differently; 0 = off"
        },
    )
    input_size: int = field(default=48, metadata={"help": "model input height = width (FER+ crops are 48x48)"})
    channels: int = field(default=1, metadata={"help": "1 = BT.601 luma (FER+ is grayscale), 3 = RGB"})
    # optimisation (MAN recipe)
    epochs: int = field(default=24, metadata={"help": "epochs to run (recipe: 100); their schedule: --schedule-epochs"})
    schedule_epochs: int = field(
        default=RECIPE_EPOCHS,
        metadata={
            "help": f"length of the schedule the run follows (recipe: {RECIPE_EPOCHS}): the mutual-learning ramp lambda(t) "
            f"uses E = this, and lr decays by lr_decay^({RECIPE_EPOCHS} / this) per epoch, so a value below "
            f"{RECIPE_EPOCHS} compresses both alike; with the default a run of fewer --epochs is the start of "
            "the recipe's own schedule"
        },
    )
    batch_size: int = field(default=128, metadata={"help": "mini-batch size (recipe: 128)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (recipe: 1e-3)"})
    weight_decay: float = field(default=1e-4, metadata={"help": "Adam weight decay (recipe: 1e-4)"})
    lr_decay: float = field(
        default=0.9, metadata={"help": "exponential lr decay per recipe epoch (recipe: 0.9; see --schedule-epochs)"}
    )
    label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy label smoothing"})
    # thresholds exported with the model (Adaptive Threshold Learning, asm-method.md)
    t_noisy: float = field(default=0.2, metadata={"help": "base noisy threshold T_n (supplement: best pair [0.2, 0.8])"})
    t_clean: float = field(default=0.8, metadata={"help": "base clean threshold T_c (supplement: best pair [0.2, 0.8])"})
    threshold_mode: Literal["adaptive", "fixed"] = field(default="adaptive", metadata={"help": "adaptive | fixed"})
    # ASM (asm-method.md); the paper's 100-epoch recipe warms up for 10 epochs
    warmup_epochs: int = field(
        default=3, metadata={"help": "CE warm-up epochs before mining (recipe: 10 of 100)", "aliases": ["--warmup"]}
    )
    omega: float = field(default=0.6, metadata={"help": "weight of mutual learning on ambiguous samples (supplement: 0.6)"})
    gamma: float = field(default=1.0, metadata={"help": "weight of consistency on noisy samples (supplement: 1.0)"})
    beta: float = field(default=0.65, metadata={"help": "lambda ramp shape (supplement sweep, best on RAF-DB: 0.65)"})
    statistic: Literal["given-label", "mean-class-prob", "predicted-max"] = field(
        default="given-label",
        metadata={"help": "class statistic mu_k"},
    )
    normalisation: Literal["max", "none"] = field(default="max", metadata={"help": "rho_k = mu_k / max mu (max) or mu_k (none)"})
    source: Literal["ensemble", "per-network"] = field(
        default="ensemble",
        metadata={
            "help": "probabilities mu_k comes from: the ensemble, or each network for its own thresholds",
        },
    )
    momentum: float = field(default=0.0, metadata={"help": "moving average of mu across epochs (0 = each epoch alone)"})
    mining_rule: Literal["ensemble", "both-nets"] = field(
        default="ensemble",
        metadata={"help": "ensemble | both-nets (codivision: use --method)"},
    )
    mining_view: Literal["weak", "plain"] = field(
        default="weak",
        metadata={
            "help": "view used to mine (MAN: weak; plain: un-augmented images, which change subset less between epochs)",
        },
    )
    strong_view: Literal["man", "harsh"] = field(
        default="man",
        metadata={
            "help": "strong view of the consistency term: man (MAN's RandAugment scaled to 48 px: 2 ops each with p=.5 "
            "incl. identity, translate 4.5 %, posterize 4 bits, cutout 0.5 % of the area) | harsh (the view before "
            "issue 16: 2 ops always, translate 30 %, posterize 2-3 bits, solarize, cutout 25 % of the area)",
        },
    )
    detach_mutual: bool = field(default=False, metadata={"help": "treat the peer's distribution as a fixed target"})
    detach_consistency: bool = field(default=False, metadata={"help": "treat the weak view as a fixed target"})
    forward: Literal["concat", "separate"] = field(
        default="concat",
        metadata={
            "help": "concat: one forward per net for all subsets (faster); "
            "separate: one per subset (MAN; BN statistics per subset)",
        },
    )
    # run
    seed: int = field(default=0, metadata={"help": "seed for weights, shuffling, augmentation and noise"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when available, else CPU) | cpu | cuda | cuda:N"})
    threads: int = field(default=2, metadata={"help": "torch intra-op threads"})
    precision: Precision = field(
        default="auto",
        metadata={
            "help": "arithmetic of the training forward passes: auto = bf16 autocast on CUDA; on the CPU bf16 only where it "
            "has AMX or AVX-512-BF16 and a start-up timing shows bf16 at least 1.3x faster, else fp32 (an AVX2-only CPU "
            "runs bf16 convolutions 25x slower); decided once per run and written to its config.json; bf16 / fp32 force "
            "it (weights, optimiser and losses stay fp32; docs/results.md, E6)",
        },
    )
    eval_engine: Literal["auto", "torch", "onnxruntime"] = field(
        default="auto",
        metadata={
            "help": "engine of the no-grad passes (mining, evaluation): auto = onnxruntime on the CPU "
            "(about 2x faster there), PyTorch on CUDA",
        },
    )
    eval_batch_size: int = field(default=512, metadata={"help": "batch size for evaluation passes"})
    run_dir: str = field(default="training/runs/ferplus-ce", metadata={"help": "run folder: config, metrics, checkpoints"})
    keep_epochs: tuple[int, ...] = field(
        default=(), metadata={"help": "also keep the checkpoint of these epochs as epoch-NN.pt (points to --warm-start from)"}
    )
    log_fit: bool = field(
        default=True,
        metadata={
            "help": "when the noise mask is known, predict the un-augmented training set after every epoch and log how "
            "many wrong labels the model fits (memorises) and how many right ones (about 1/7 of an epoch's compute)"
        },
    )
    strict: bool = field(
        default=False,
        metadata={
            "help": "stop with an error, instead of a warning, when a mining epoch collapses (one subset holds 95 % of "
            "the samples) or leaves a class without clean samples; the last checkpoint stays, so the same command "
            "without --strict resumes the run"
        },
    )
    warm_start: str = field(
        default="",
        metadata={
            "help": "begin from another run's checkpoint taken during its CE warm-up (e.g. RUN/epoch-02.pt of a ce2 run): "
            "same data, labels, seed, network and schedule; only the method and its ASM options may differ"
        },
    )

    def __post_init__(self) -> None:
        if not 0 <= self.calibration < 1:
            raise ConfigError(f"calibration must be a share in [0, 1); got {self.calibration!r}")
        if self.calibration_fold:
            if self.calibration:
                raise ConfigError("give --calibration (a share) or --calibration-fold (one fold of K), not both")
            _ = self.fold  # parses and checks I/K
        if self.targets == "votes" and (self.method not in ("ce", "ce2") or self.noise != "none"):
            raise ConfigError(
                f"--targets votes is for ce and ce2 on the dataset's own labels (method {self.method!r}, noise {self.noise!r}): "
                "the votes say nothing about injected noise, and ASM's subsets are defined on one label per image"
            )
        if self.freeze_stages and self.backbone != "dlib-resnet":
            raise ConfigError(f"--freeze-stages is for the pretrained --backbone dlib-resnet (backbone {self.backbone!r})")
        if not 0 <= self.freeze_stages <= 5:
            raise ConfigError(f"freeze_stages must be 0..5 (dlib's ResNet has five stages); got {self.freeze_stages!r}")
        # flags are checked by argparse; this also catches values from a --config file or from_dict
        hints = typing.get_type_hints(TrainConfig)
        for f in dataclasses.fields(self):
            allowed = choices_of(hints[f.name])
            if allowed is not None and getattr(self, f.name) not in allowed:
                raise ConfigError(f"{f.name} must be one of {', '.join(allowed)}; got {getattr(self, f.name)!r}")

    def without(self, names: frozenset[str]) -> dict[str, Any]:
        """The config as a dict minus `names`: what two runs must share to be comparable."""
        return {k: v for k, v in self.to_dict().items() if k not in names}

    @property
    def fold(self) -> tuple[int, int] | None:
        """(I, K) of --calibration-fold, or None."""
        if not self.calibration_fold:
            return None
        try:
            i, k = (int(v) for v in self.calibration_fold.split("/"))
        except ValueError:
            raise ConfigError(f"calibration_fold must be I/K, e.g. 0/5; got {self.calibration_fold!r}") from None
        if not (k >= 2 and 0 <= i < k):
            raise ConfigError(f"calibration_fold I/K needs K >= 2 and 0 <= I < K; got {self.calibration_fold!r}")
        return i, k

    @property
    def calibration_share(self) -> float:
        """The share of the training set held out for calibration, by --calibration or --calibration-fold."""
        fold = self.fold
        return 1 / fold[1] if fold else self.calibration

    @property
    def networks(self) -> int:
        return 1 if self.method == "ce" else 2

    @property
    def mines(self) -> bool:
        return self.method in ("asm", "asm-fixed", "codivision", "oracle")

    @property
    def epoch_lr_decay(self) -> float:
        """The lr factor of one epoch of this run: the recipe's per-epoch decay, at the schedule's speed."""
        return float(self.lr_decay ** (RECIPE_EPOCHS / self.schedule_epochs))

    @property
    def fixed_thresholds(self) -> bool:
        return self.method == "asm-fixed" or self.threshold_mode == "fixed"

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; known: {sorted(names)}")
        fixed: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**fixed)


# where and how fast a run goes, and what it keeps on disk, is not part of its result
# (--strict only decides whether a warning stops the run: a run it lets finish is the same run)
RUNTIME_FIELDS = frozenset({"device", "threads", "eval_engine", "eval_batch_size", "keep_epochs", "run_dir", "log_fit", "strict"})
# what may differ between a run and the warm-up it started from
METHOD_FIELDS = (
    frozenset({"method", "warmup_epochs", "warm_start", "forward"})
    | frozenset({"t_noisy", "t_clean", "threshold_mode", "statistic", "normalisation", "source", "momentum"})
    | frozenset({"mining_rule", "mining_view", "strong_view", "omega", "gamma", "beta", "detach_mutual", "detach_consistency"})
)


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def choices_of(tp: Any) -> tuple[Any, ...] | None:
    """The allowed values of a Literal-typed field (None for other types): the one list of choices,
    used by the flags' --help and checked again for values that come from a --config file."""
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def _arg_type(tp: Any) -> tuple[Any, str | None]:
    if tp is bool:
        return _parse_bool, None
    if typing.get_origin(tp) is Literal:
        return str, None
    if typing.get_origin(tp) is tuple:
        return typing.get_args(tp)[0], "+"
    return tp, None


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per TrainConfig field, defaults shown in --help, plus `--config FILE`."""
    parser.add_argument("--config", type=Path, help="JSON file of config values (flags override it)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        tp, nargs = _arg_type(hints[f.name])
        default = f.default
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            *f.metadata.get("aliases", []),
            dest=f.name,
            type=tp,
            nargs="?" if tp is _parse_bool else nargs,  # a bare --strict means --strict true
            const=True if tp is _parse_bool else None,
            metavar="{true,false}" if tp is _parse_bool else None,
            choices=choices_of(hints[f.name]),
            default=argparse.SUPPRESS,
            help=f"{f.metadata.get('help', '')} (default: {shown})".replace("%", "%%"),  # argparse formats help with %
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(json.loads(Path(args.config).read_text()))
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    return TrainConfig.from_dict(values)
