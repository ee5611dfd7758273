"""No-grad passes over many images (the mining pass, evaluation): the networks frozen into one function.

On a CPU, onnxruntime runs these eval-mode ResNets about twice as fast as eager PyTorch (batch norm
folded into the convolutions, fused kernels), so such a pass exports the networks once and runs the
export; the export itself takes about a second for the E2 architecture (docs/results.md, E6). On CUDA,
PyTorch runs them (bf16 autocast, channels-last).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence

import onnxruntime as ort
import torch
from torch import nn

from ..device import autocast, device_of, to_device

ENGINES = ("auto", "torch", "onnxruntime")
Frozen = Callable[[torch.Tensor], torch.Tensor]  # normalised (B, C, H, W) on the CPU -> (M, B, K) fp32 logits


class _Stacked(nn.Module):
    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets])  # (M, B, K)


def resolve_engine(engine: str, device: torch.device) -> str:
    if engine not in ENGINES:
        raise ValueError(f"unknown inference engine {engine!r}, expected one of {ENGINES}")
    if engine == "auto":
        return "onnxruntime" if device.type == "cpu" else "torch"
    if engine == "onnxruntime" and device.type != "cpu":
        raise ValueError("the onnxruntime engine runs the networks on the CPU; use --eval-engine torch on CUDA")
    return engine


def _onnxruntime(nets: Sequence[nn.Module], sample: torch.Tensor) -> Frozen:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice, once per pass
        torch.onnx.export(
            _Stacked(nets),
            (sample[:2].contiguous(),),
            buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects as well
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {1: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(["logits"], {"x": x.contiguous().numpy()})[0])

    return run


def freeze(nets: Sequence[nn.Module], sample: torch.Tensor, *, engine: str = "auto") -> Frozen:
    """Eval mode, then a function of normalised CPU batches shaped like `sample` -> per-network logits."""
    for net in nets:
        net.eval()
    device = device_of(nets)
    if resolve_engine(engine, device) == "onnxruntime":
        return _onnxruntime(nets, sample)

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        xd = to_device(x, device)
        with autocast(device):
            return torch.stack([net(xd).float() for net in nets]).cpu()

    return run
