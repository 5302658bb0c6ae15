"""Export canonical checkpoints to validated ONNX.

Library: :mod:`export.pipeline` (``export_checkpoint``), :mod:`export.graph` (names and metadata),
:mod:`export.validation` (inputs and CPU sessions), :mod:`export.variants` (fp16/int8),
:mod:`export.triton`; command line: ``python -m export.onnx`` (:mod:`export.onnx`, argparse only).
"""
