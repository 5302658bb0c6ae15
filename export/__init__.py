"""Export canonical checkpoints to validated ONNX (``python -m export.onnx``)."""
