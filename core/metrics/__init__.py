"""Generative-model metrics on feature arrays, NumPy/SciPy in float64, framework-neutral.

Every function here takes features already extracted ((n, d) arrays, or class probabilities for
the Inception Score) and knows nothing of images, networks or frameworks, so the runtime, the
trainers and the tests compute each metric with the same code. Each is checked in
``tests/core/test_metrics_*.py`` against a reference implementation on the same features.
"""
