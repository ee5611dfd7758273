from __future__ import annotations

import numpy as np
import pytest
import torch

from asm_fer.config import TrainConfig
from asm_fer.data.preprocess import InputSpec
from asm_fer.evaluate import predict_probs
from asm_fer.method.asm import net_probabilities
from asm_fer.models.frozen import resolve_engine
from asm_fer.run import build_nets


def _trained_like_nets() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    nets = build_nets(TrainConfig(widths=(8, 16, 16, 16), blocks=(1, 1, 1, 1), method="ce2"), 8)
    for net in nets:  # non-trivial batch-norm statistics, as after training
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
    return nets


def test_onnxruntime_and_torch_engines_agree() -> None:
    nets, spec = _trained_like_nets(), InputSpec()
    pixels = torch.rand(300, 1, 48, 48) * 255
    torch_p = predict_probs(nets, pixels, spec, batch_size=128, engine="torch")
    ort_p = predict_probs(nets, pixels, spec, batch_size=128, engine="onnxruntime")
    assert ort_p.shape == (300, 8)
    assert np.abs(torch_p - ort_p).max() < 1e-4
    per_net = net_probabilities(nets, pixels, spec, gen=None, batch_size=128, engine="onnxruntime")
    assert per_net.shape == (2, 300, 8)
    assert np.allclose(per_net.sum(2), 1, atol=1e-5)
    seeded = [
        net_probabilities(nets, pixels, spec, gen=torch.Generator().manual_seed(3), batch_size=128, engine=e)
        for e in ("torch", "onnxruntime")
    ]
    assert np.abs(seeded[0] - seeded[1]).max() < 1e-4  # the same weak views through either engine


def test_engine_choice() -> None:
    assert resolve_engine("auto", torch.device("cpu")) == "onnxruntime"
    assert resolve_engine("auto", torch.device("cuda")) == "torch"
    with pytest.raises(ValueError, match="CPU"):
        resolve_engine("onnxruntime", torch.device("cuda"))
    with pytest.raises(ValueError, match="unknown"):
        resolve_engine("tensorrt", torch.device("cpu"))
