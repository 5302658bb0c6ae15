"""Serve exported A.G.E. generators with onnxruntime + NumPy + Pillow only (no torch, no TensorFlow).

    import runtime
    session = runtime.load("exported/model")          # a directory or a <part>.onnx file
    images = session.generate(16, seed=0)                 # uint8 (16, H, W, 3)
    similar = session.variations("face.png", n=10)        # needs a Gaussian encoder.onnx beside the decoder
    again = session.reconstruct_image("face.png")         # any encoder: encode (mu or z), decode
    z = session.invert("face.png")                        # its latent (unit norm for a sphere prior)
    walk = session.interpolate("a.png", "b.png", steps=8) # uint8 (8, H, W, 3); lerp, or slerp on the sphere

    fast = runtime.load("exported/model", precision="auto", backend="openvino")  # measured here
    fast.precision, fast.backend                          # e.g. ("bf16", "openvino")

CLI: ``python -m runtime.generate DIR --n 16 --seed 0 --out grid.png`` (``--precision``, ``--backend``,
``--threads``, ``--spin``: :mod:`runtime.precision`, :mod:`runtime.backends`, :mod:`runtime.threads`).
"""

from core.errors import AgeError, DataError, ModelFileError

from .backends import BackendError
from .providers import ProviderChoice, ProviderError
from .session import GeneratorSession, UnsupportedOperation, load

__all__ = [
    "AgeError",
    "BackendError",
    "DataError",
    "GeneratorSession",
    "ModelFileError",
    "ProviderChoice",
    "ProviderError",
    "UnsupportedOperation",
    "load",
]
