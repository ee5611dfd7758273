"""Reads TF.js layers-format weights: a `*-weights_manifest.json` plus the `.bin` shards it names, into
float32 tensors by name, undoing the converter's uint8/uint16 (min + scale * q) or float16 quantisation.

Format (tfjs-converter "weights manifest"): a JSON list of groups, each `{"paths": [shard files],
"weights": [{"name", "shape", "dtype", "quantization"?: {"dtype", "min", "scale"}}]}`; a group's shards
concatenated hold its weights back to back, in order, little-endian.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

# bytes per stored element, by the dtype the bytes hold
STORED_DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "float16": np.dtype("<f2"),
}
AFFINE_QUANTISATIONS = ("uint8", "uint16")  # value = min + scale * q


class WeightsError(ValueError):
    """A manifest or shard that does not describe the weights it claims to."""


def _dequantise(raw: np.ndarray, entry: Mapping[str, Any], quant: Mapping[str, Any] | None) -> np.ndarray:
    if quant is None:
        return raw.astype(np.float32)
    if quant["dtype"] in AFFINE_QUANTISATIONS:
        if "scale" not in quant or "min" not in quant:
            raise WeightsError(f"{entry['name']}: {quant['dtype']} quantisation without scale and min: {dict(quant)}")
        return (np.float64(quant["min"]) + np.float64(quant["scale"]) * raw.astype(np.float64)).astype(np.float32)
    return raw.astype(np.float32)  # float16 quantisation: the stored halves are the values


def read_tfjs_weights(manifest: Path | str) -> dict[str, torch.Tensor]:
    """All weights of `manifest` (shards looked up beside it) as float32 tensors with the manifest's
    shapes (TF layout: conv filters (kH, kW, C_in, C_out), dense (in, out)), in manifest order."""
    manifest = Path(manifest)
    try:
        groups = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise WeightsError(f"cannot read weights manifest {manifest}: {e}") from e
    if not isinstance(groups, list):
        raise WeightsError(f"{manifest}: expected a JSON list of weight groups, got {type(groups).__name__}")
    weights: dict[str, torch.Tensor] = {}
    for g, group in enumerate(groups):
        if not isinstance(group, dict) or "paths" not in group or "weights" not in group:
            raise WeightsError(f"{manifest}: group {g} needs 'paths' and 'weights', got {group!r:.120}")
        shards = [manifest.parent / p for p in group["paths"]]
        missing = [str(s) for s in shards if not s.is_file()]
        if missing:
            raise WeightsError(f"{manifest}: group {g} names shards that do not exist: {missing}")
        buffer = b"".join(s.read_bytes() for s in shards)
        offset = 0
        for entry in group["weights"]:
            name, shape = entry["name"], tuple(int(d) for d in entry["shape"])
            quant = entry.get("quantization")
            stored = quant["dtype"] if quant else entry["dtype"]
            if stored not in STORED_DTYPES:
                raise WeightsError(f"{manifest}: {name} is stored as {stored!r}; supported: {sorted(STORED_DTYPES)}")
            if entry["dtype"] not in ("float32", "int32"):
                raise WeightsError(f"{manifest}: {name} has dtype {entry['dtype']!r}, expected float32 or int32")
            if name in weights:
                raise WeightsError(f"{manifest}: {name} appears twice")
            dtype = STORED_DTYPES[stored]
            n = math.prod(shape)
            end = offset + n * dtype.itemsize
            if end > len(buffer):
                raise WeightsError(
                    f"{manifest}: {name} {list(shape)} needs bytes {offset}-{end} of group {g}, whose shards hold {len(buffer)}"
                )
            raw = np.frombuffer(buffer, dtype=dtype, count=n, offset=offset).reshape(shape)
            weights[name] = torch.from_numpy(_dequantise(raw, entry, quant).copy())
            offset = end
        if offset != len(buffer):
            raise WeightsError(f"{manifest}: group {g}'s weights use {offset} bytes of its shards' {len(buffer)}")
    return weights
