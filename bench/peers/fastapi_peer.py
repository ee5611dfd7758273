"""COMPARISON SERVER, not part of the service: what a Python user would write in an afternoon to serve the same
bundle, the FastAPI peer of E5 (bench/e5-peers.ts, issue 22).

POST /v1/predict with one or more multipart `image` parts answers each image's label, confidence and class
probabilities. Preprocessing is the bundle's (`training/asm_fer/data/preprocess.py` `load_pixels` + `normalise`: PIL decode,
EXIF orientation, RGB, bilinear resize when the size differs, BT.601 luma in float32, x * scale, (x - mean) / std), and
onnxruntime runs with intra-op spinning off, as the service's sessions do, so the two compare on the same work (--spinning
turns it on, as onnxruntime's defaults have it).
No batching across requests, no validation beyond what FastAPI does, no limits, no metrics: a peer, not a product.

Run: bench/peers/.venv/bin/python bench/peers/fastapi_peer.py --model-dir models/default --port 18201 [--threads 1] [--spinning]
Lint (training's settings): training/.venv/bin/ruff check --config training/pyproject.toml bench/peers and
training/.venv/bin/mypy --config-file training/pyproject.toml --python-executable bench/peers/.venv/bin/python bench/peers
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, File, UploadFile
from PIL import Image, ImageOps

LUMA_BT601 = (0.299, 0.587, 0.114)


def build_app(model_dir: Path, threads: int, spinning: bool = False) -> FastAPI:
    manifest: dict[str, Any] = json.loads((model_dir / "model.json").read_text())
    spec = manifest["input"]
    classes: list[str] = manifest["classes"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # As the service does (src/onnx/providers.ts): idle threads that spin steal the cores HTTP and decoding need.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(str(model_dir / manifest["model"]["file"]), opts, providers=["CPUExecutionProvider"])
    width, height, channels = int(spec["width"]), int(spec["height"]), int(spec["channels"])
    scale = np.float32(spec["scale"])
    mean = np.asarray(spec["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(spec["std"], dtype=np.float32).reshape(-1, 1, 1)
    input_name, output_name = spec["name"], manifest["output"]["name"]

    def tensor(data: bytes) -> np.ndarray:
        """Image bytes -> (C, H, W) float32, as data/preprocess.py makes it."""
        with Image.open(io.BytesIO(data)) as im:
            rgb = ImageOps.exif_transpose(im).convert("RGB")
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
        arr = np.asarray(rgb, dtype=np.float32)  # (H, W, 3)
        if channels == 1:
            r, g, b = LUMA_BT601
            arr = (arr[..., 0] * r + arr[..., 1] * g + arr[..., 2] * b)[None]  # (1, H, W)
        else:
            arr = arr.transpose(2, 0, 1)  # (3, H, W)
        out: np.ndarray = (arr * scale - mean) / std
        return out

    app = FastAPI()

    # A plain `def` endpoint: FastAPI runs it in its thread pool, so onnxruntime does not block the event loop.
    @app.post("/v1/predict")
    def predict(image: list[UploadFile] = File(...)) -> dict[str, Any]:  # noqa: B008 (FastAPI's own idiom)
        batch = np.stack([tensor(part.file.read()) for part in image])  # (N, C, H, W)
        probs = session.run([output_name], {input_name: batch})[0]  # (N, K)
        results = []
        for row in probs:
            best = int(np.argmax(row))
            results.append(
                {
                    "label": classes[best],
                    "confidence": float(row[best]),
                    "probabilities": {c: float(p) for c, p in zip(classes, row, strict=True)},
                }
            )
        return {"model": {"name": manifest["name"], "version": manifest["version"]}, "results": results}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models/default"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18201)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads; 0: one per physical core")
    parser.add_argument("--spinning", action="store_true", help="let idle threads spin (onnxruntime's default)")
    args = parser.parse_args()
    app = build_app(args.model_dir, args.threads, args.spinning)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
