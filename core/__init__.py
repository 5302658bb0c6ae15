"""Framework-neutral source of truth for the A.G.E. toolkit.

Nothing in this package imports torch or tensorflow: configs, the model registry (parts and
their tensor shapes), the safetensors checkpoint format, the torch<->Keras layout rules, seeded
latent noise, image I/O and the embedded default dataset all live here once and are shared by
``torch_impl``, ``keras_impl``, ``export`` and ``runtime``.
"""

FORMAT_VERSION = "1"
