"""The ensemble as one ONNX graph: export with a dynamic batch axis, `onnx.checker`, optional float16 storage of
the weights, and the onnxruntime-vs-PyTorch parity check on a batch.

With float16 weights the file stores its large weights as float16, each followed by a Cast to float32:
the file is half the size, while inputs, outputs and all arithmetic stay float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.fx.experimental.optimization import fuse

from ..data.preprocess import InputSpec
from ..evaluate import onnx_probs
from .bundle import OPSET, OUTPUT

# float32 graphs reorder reductions differently in onnxruntime and PyTorch; 1e-4 absolute on
# probabilities is far below anything that can move a verdict and far above such reordering noise.
PARITY_ATOL = 1e-4
# A Cast node and the renamed initializer cost about 100 bytes of protobuf; from 256 elements on
# (512 bytes saved) storing float16 pays for them several times over.
FLOAT16_MIN_ELEMENTS = 256


def round_weights_to_float16(model: nn.Module) -> nn.Module:
    """A copy of `model` (eval mode) with each batch norm folded into the convolution before it, as the
    ONNX exporter folds them anyway, and then every floating-point parameter and buffer rounded through
    float16. This is the function a float16-stored graph computes, so it is the reference of the parity
    check. Folding first matters: folding float16-rounded batch-norm statistics in float32 would give
    weights that float16 cannot hold, and storing them would round a second time."""
    fused: nn.Module = fuse(model.eval())  # a deep copy
    with torch.no_grad():
        for t in [*fused.parameters(), *fused.buffers()]:
            if t.is_floating_point():
                t.copy_(t.to(torch.float16).to(t.dtype))
    return fused


def store_float16(model: onnx.ModelProto) -> None:
    """Rewrite each float32 initializer of FLOAT16_MIN_ELEMENTS or more as a float16 initializer followed by
    a Cast to float32 under the original name, so every consumer, the graph's inputs and outputs and the
    arithmetic stay float32. Refuses a value that float16 cannot hold exactly: the weights must have been
    rounded first (`round_weights_to_float16`), so that the rewrite changes no number."""
    casts = []
    for init in model.graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        weights = numpy_helper.to_array(init)
        if weights.size < FLOAT16_MIN_ELEMENTS:
            continue
        half = weights.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), weights):
            raise ValueError(f"initializer {init.name} is not exact in float16: round the weights before export")
        stored = f"{init.name}.float16"
        casts.append(helper.make_node("Cast", [stored], [init.name], name=f"{init.name}.cast", to=TensorProto.FLOAT))
        init.CopyFrom(numpy_helper.from_array(half, stored))
    # Casts first: a graph's nodes must be in topological order.
    nodes = [*casts, *model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def export_onnx(model: nn.Module, spec: InputSpec, path: Path, *, weights: str = "float32") -> None:
    """Export `model` to `path`; with weights="float16", `model` must come from `round_weights_to_float16`."""
    model.eval()
    dummy = torch.zeros(2, spec.channels, spec.height, spec.width)
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        input_names=[spec.name],
        output_names=[OUTPUT],
        dynamic_axes={spec.name: {0: "batch"}, OUTPUT: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    graph = onnx.load(str(path))
    if weights == "float16":
        store_float16(graph)
        onnx.save(graph, str(path))
    onnx.checker.check_model(graph, full_check=True)


def check_parity(model: nn.Module, path: Path, x: torch.Tensor) -> float:
    with torch.no_grad():
        expected = model(x).numpy()
    got = onnx_probs(path, x.numpy())
    err = float(np.abs(expected - got).max())
    if err > PARITY_ATOL:
        raise RuntimeError(f"onnxruntime and PyTorch disagree by {err:.2e} (> {PARITY_ATOL}) on {path}")
    return err
