"""From a finished run to a model bundle: the ONNX graph, the calibration measured on held-out images, and
the `model.json` document."""
