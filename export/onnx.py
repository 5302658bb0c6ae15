"""``python -m export.onnx CKPT --out DIR [--via torch|keras] [--opset N]``.

Reads a canonical checkpoint written by either framework, exports every part of the model
(:mod:`core.registry`) to ``DIR/<part>.onnx`` with a dynamic batch axis, runs the ONNX checker
(``full_check=True``), compares onnxruntime's outputs with the framework's on the same random
inputs (batch 3, while the export traced batch 2, so the dynamic axis is exercised), embeds
the metadata of :mod:`export.graph`, prints a table and exits non-zero if any part misses the
tolerance. Files land only when every part passed (all or nothing).

Every graph is first rewritten for speed by :mod:`export.optimize` (``--no-optimize``: as exported);
the validation runs on the rewritten graph.

Options beyond fp32: ``--fp16`` / ``--int8`` also write ``<part>.fp16.onnx`` / ``<part>.int8.onnx``
and report their PSNR and CPU speed against fp32 (:mod:`export.variants`); ``--triton REPO``
also writes a Triton Inference Server model repository (:mod:`export.triton`).

This module is only the command line: the work is :func:`export.pipeline.export_checkpoint`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from core.errors import AgeError, os_error_message

from .pipeline import DEFAULT_OPSET, TOLERANCE, VIA, export_checkpoint

log = logging.getLogger("export.onnx")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="canonical checkpoint (.safetensors) from either framework")
    parser.add_argument("--out", required=True, help="output directory for <part>.onnx files")
    parser.add_argument("--via", choices=VIA, default="torch", help="exporter to use (default: torch)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="max |diff| allowed vs the framework")
    parser.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=True,
                        help="rewrite each graph for speed before validating it (export.optimize; default on)")
    parser.add_argument("--fp16", action="store_true", help="also write <part>.fp16.onnx and report its PSNR")
    parser.add_argument("--int8", action="store_true",
                        help="also write <part>.int8.onnx (static QDQ quantization) and report PSNR and CPU speed-up")
    parser.add_argument("--triton", metavar="REPO", help="also write a Triton Inference Server model repository")
    parser.add_argument("--triton-name", help="Triton model name prefix (default: the model key); models are NAME_<part>")
    parser.add_argument("--triton-max-batch", type=int, default=64, help="Triton max_batch_size (default 64)")
    parser.add_argument("--triton-delay-us", type=int, default=5000,
                        help="Triton dynamic batching max_queue_delay_microseconds (default 5000)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        variants = tuple(v for v, on in (("fp16", args.fp16), ("int8", args.int8)) if on)
        reports = export_checkpoint(args.checkpoint, args.out, args.via, args.opset, args.tolerance, variants,
                                    args.triton, args.triton_name, args.triton_max_batch, args.triton_delay_us,
                                    optimize=args.optimize)
    except AgeError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error("%s", os_error_message(exc))
        return 1
    for r in reports:
        print(f"wrote {r.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
